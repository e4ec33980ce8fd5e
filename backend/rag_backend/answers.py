"""Answers with citations: the prompt (in one place), context trimming, citation mapping, the answer cache.

The model sees the retrieved passages numbered [1]..[n] and is asked to cite them with those markers;
the markers it actually uses become `citations`, each mapped to the result it names. When no provider
answers (none configured, all down or breaker-open), the answer is extractive, so a query still succeeds: the
few sentences of the top passages that share most words with the question, each cited, and a quiet closing line
(why no model answered is `llm.reason`, never the answer's text: it would show internal addresses to readers).
Which provider answers (fallback, breakers) is the chain's business (`llm.Chain.stream`); this module only
consults its answer cache on the chain's behalf.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson

from rag_backend import traces
from rag_backend.cache import Cache, digest
from rag_backend.chunking import TokenCounter
from rag_backend.conversations.rewrite import Turn, without_markers
from rag_backend.core.config import Settings
from rag_backend.llm import Attempt, Chain, Message, Outcome, Provider

# The prompt template. Passages are numbered in rank order; the model must cite them as [n].
SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources provided. Cite the source of every claim with its "
    "number in square brackets, like [1] or [2][3]. If the sources do not contain the answer, say that you "
    "do not know. Answer concisely, in the language of the question."
)
SOURCE_TEMPLATE = "[{n}] {label}\n{text}"
USER_TEMPLATE = "Sources:\n\n{sources}\n\nQuestion: {question}"
EXTRACTIVE_PASSAGES = 3  # the extract's sentences come from these top passages
EXTRACTIVE_SENTENCES = 3
EXTRACTIVE_SENTENCE_CHARS = 320
EXTRACTIVE_NOTE = "_No language model answered: these sentences are quoted from the sources._"
NO_PASSAGES = "No passage in the searched collections matches the question."
_MARKER = re.compile(r"\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]")
# Blocks: paragraphs, and lines that open with a Markdown heading, list, quote or table mark (a hard-wrapped line
# does not end a sentence); sentence ends, a closing quote or bracket may follow; the marks a block opens with.
_BLOCK = re.compile(r"\n\s*\n|\n(?=\s*(?:[#>*+|-]|\d{1,3}[.)])\s)")
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+|(?<=[.!?…][\"')\]»”’])\s+")
# A line that is only a heading: ATX ("## Costs"), a setext title (the line above "===" or "---"), or a line that is
# all bold ("**Costs**"). It names a section; quoted as a sentence it reads as a fragment.
_HEADING_LINE = re.compile(
    r"^[ \t]{0,3}#{1,6}(?:[ \t].*)?$"  # ATX
    r"|^.+\n[ \t]*(?:=+|-{2,})[ \t]*$"  # setext
    r"|^[ \t]*(?:\*\*|__)[^*_\n]+(?:\*\*|__)[ \t]*:?[ \t]*$",  # a bold line
    re.MULTILINE,
)
_LEADING_MARKS = re.compile(r"^(?:[#>*+|\-]+|\d{1,3}[.)])\s+")
_WORD = re.compile(r"\w+")
_STOPWORDS = frozenset(
    "a an and are as at be but by can do does did for from has have how i if in into is it its of on or so that the "
    "their them then there these they this to was were what when where which who whom why will with you your".split()
)

Event = tuple[str, dict[str, Any]]


def source_label(result: dict[str, Any]) -> str:
    parts = [f"source: {result.get('source') or 'unknown'}"]
    if result.get("page"):
        parts.append(f"page {result['page']}")
    if result.get("heading"):
        parts.append(f"section: {result['heading']}")
    return "(" + ", ".join(parts) + ")"


def history_messages(history: Sequence[Turn], tokenizer: TokenCounter, budget: int) -> list[Message]:
    """The earlier turns as chat messages, the most recent kept first, within `budget` tokens. Their [n] markers
    go: they numbered other sources."""
    out: list[Message] = []
    remaining = budget
    for turn in reversed(history):
        pair = [{"role": "user", "content": turn.question}]
        if turn.answer.strip():
            pair.append({"role": "assistant", "content": without_markers(turn.answer).strip()})
        cost = sum(tokenizer.count(m["content"]) for m in pair)
        if cost > remaining:
            break
        out[:0] = pair
        remaining -= cost
    return out


def build_prompt(
    question: str,
    results: list[dict[str, Any]],
    tokenizer: TokenCounter,
    budget: int,
    history: Sequence[Message] = (),
) -> tuple[list[Message], list[dict[str, Any]]]:
    """Messages plus the results that fit in `budget` tokens of context (in rank order; the first always fits,
    cut if it must). `history`: earlier turns of the conversation, between the instructions and the question."""
    used: list[dict[str, Any]] = []
    blocks: list[str] = []
    remaining = budget
    for result in results:
        text = result.get("text", "")
        header = SOURCE_TEMPLATE.format(n=len(used) + 1, label=source_label(result), text="")
        cost = tokenizer.count(header) + tokenizer.count(text)
        if cost > remaining:
            if used:
                break
            text = _cut(text, tokenizer, max(remaining - tokenizer.count(header), 16))
            cost = remaining
        used.append(result)
        blocks.append(SOURCE_TEMPLATE.format(n=len(used), label=source_label(result), text=text))
        remaining -= cost
    user = USER_TEMPLATE.format(sources="\n\n".join(blocks), question=question)
    return [{"role": "system", "content": SYSTEM_PROMPT}, *history, {"role": "user", "content": user}], used


def _cut(text: str, tokenizer: TokenCounter, tokens: int) -> str:
    offsets = tokenizer.offsets(text)
    return text if len(offsets) <= tokens else text[: offsets[tokens - 1][1]]


def citations(answer: str, context: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The markers the answer uses, in order of first use, each mapped to the result it numbers."""
    seen: list[int] = []
    for match in _MARKER.finditer(answer):
        for part in match.group(1).split(","):
            n = int(part)
            if 1 <= n <= len(context) and n not in seen:
                seen.append(n)
    return [
        {
            "marker": n,
            "result_id": context[n - 1]["id"],
            "collection": context[n - 1].get("collection"),
            "document_id": context[n - 1].get("document_id"),
            "source": context[n - 1].get("source"),
            "page": context[n - 1].get("page"),
            "position": context[n - 1].get("position"),
            "char_start": context[n - 1].get("char_start"),
            "char_end": context[n - 1].get("char_end"),
        }
        for n in seen
    ]


def _terms(text: str) -> set[str]:
    """Lower-cased content words, lightly stemmed ("cells" and "cell" meet): enough to rank a few sentences."""
    out = set()
    for word in _WORD.findall(text.lower()):
        if word in _STOPWORDS or len(word) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        out.add(word)
    return out


def _sentences(text: str) -> list[str]:
    """A passage's sentences, one line each, without Markdown's leading marks; fragments of under 3 words go."""
    out = []
    text = _HEADING_LINE.sub("\n\n", text)  # a heading ends the block before it and is never quoted itself
    parts = [part for block in _BLOCK.split(text) for part in _SENTENCE_END.split(" ".join(block.split()))]
    for part in parts:
        sentence = _LEADING_MARKS.sub("", part)
        sentence = _MARKER.sub(r"(\1)", sentence)  # a source's own "[2]" must not read as our citation marker
        if len(sentence.split()) >= 3:
            cut = len(sentence) > EXTRACTIVE_SENTENCE_CHARS
            out.append(sentence[:EXTRACTIVE_SENTENCE_CHARS].rstrip() + "…" if cut else sentence)
    return out


def _pick(scored: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    """The best sentences, spread over the passages: first the best of each passage whose best is good (shares at
    least half as many words with the question as the best sentence of all), then the next best, whatever their
    passage. So one passage is not cited for every sentence while others have good ones."""
    ranked = [s for s in sorted(scored) if s[0] < 0]
    if not ranked:
        return []
    top = -ranked[0][0]
    picked: list[tuple[int, int, int, str]] = []
    for s in ranked:
        if len(picked) < EXTRACTIVE_SENTENCES and -s[0] * 2 >= top and all(p[1] != s[1] for p in picked):
            picked.append(s)
    picked += [s for s in ranked if s not in picked][: EXTRACTIVE_SENTENCES - len(picked)]
    return picked


def extractive(question: str, context: list[dict[str, Any]]) -> str:
    """A short extract: the sentences of the top passages that share most content words with the question (ties go
    to the better passage; spread over the passages that have good ones), in reading order, each followed by its
    passage's [n]; then a quiet closing line."""
    if not context:
        return NO_PASSAGES
    wanted = _terms(question)
    scored: list[tuple[int, int, int, str]] = []  # (-overlap, marker, index in passage, sentence)
    seen: set[str] = set()
    for n, result in enumerate(context[:EXTRACTIVE_PASSAGES], start=1):
        for i, sentence in enumerate(_sentences(result.get("text", ""))):
            if sentence.lower() not in seen:  # overlapping chunks repeat sentences
                seen.add(sentence.lower())
                scored.append((-len(wanted & _terms(sentence)), n, i, sentence))
    if not scored:  # passages of fragments only (a table, a list of names): the top one, whole
        return f"{' '.join(context[0].get('text', '').split())[:EXTRACTIVE_SENTENCE_CHARS]} [1]\n\n{EXTRACTIVE_NOTE}"
    best = _pick(scored)
    if not best:  # nothing shares a word with the question: the top passage's opening says most
        best = [s for s in scored if s[1] == 1][:2] or scored[:1]
    elif len(best) == 1:  # one sentence matched: the one after it in its passage usually carries it on
        best += [s for s in scored if (s[1], s[2]) == (best[0][1], best[0][2] + 1)]
    picked = sorted(best, key=lambda s: (s[1], s[2]))
    return " ".join(_cite(sentence, n) for _, n, _, sentence in picked) + f"\n\n{EXTRACTIVE_NOTE}"


def _cite(sentence: str, n: int) -> str:
    """The marker inside the sentence's full stop ("... electricity [1]."); a fragment (a list item) gets one."""
    if sentence[-1] in ".!?。！？" and not sentence.endswith("..."):
        return f"{sentence[:-1]} [{n}]{sentence[-1]}"
    return f"{sentence.rstrip(',;:')} [{n}]."


class Answerer:
    def __init__(self, settings: Settings, chain: Chain, cache: Cache, tokenizer: TokenCounter) -> None:
        self.s, self.chain, self.cache, self.tokenizer = settings, chain, cache, tokenizer

    async def answer(
        self,
        question: str,
        results: list[dict[str, Any]],
        scope: Sequence[str] = (),
        history: Sequence[Turn] = (),
        search_query: str | None = None,
    ) -> dict[str, Any]:
        """The non-streaming form: the same events, collected."""
        final: dict[str, Any] = {}
        async for kind, data in self.stream(question, results, scope, history, search_query):
            if kind == "citations":
                final["citations"] = data["citations"]
            elif kind == "done":
                final.update(data)
        return final

    async def stream(
        self,
        question: str,
        results: list[dict[str, Any]],
        scope: Sequence[str] = (),
        history: Sequence[Turn] = (),
        search_query: str | None = None,
    ) -> AsyncIterator[Event]:
        """`scope`: the collections the results were searched in (`QueryParams.targets`); the answer cache keys on it,
        so an answer is only ever served again to a query over the same collections. `history`: the conversation's
        recent turns (the prompt carries them within CONVERSATION_HISTORY_TOKENS, and the cache keys on the whole
        prompt); `search_query`: what was searched, which picks the extractive answer's sentences."""
        start = time.perf_counter()
        earlier = history_messages(history, self.tokenizer, self.s.conversation_history_tokens)
        messages, context = build_prompt(question, results, self.tokenizer, self.s.llm_context_tokens, earlier)
        ids = [r["id"] for r in context]
        targets = sorted(scope)

        def cache_key(provider: Provider) -> str:
            return f"ans:{digest([provider.name, provider.model, targets, messages, ids])}"

        async def cached(provider: Provider) -> str | None:
            hit = await self.cache.get("answer", cache_key(provider))
            return None if hit is None else orjson.loads(hit)["answer"]

        outcome = Outcome()
        parts: list[str] = []
        generating = time.perf_counter()
        if context:
            async for text in self.chain.stream(messages, outcome, cached):
                parts.append(text)
                yield "token", {"text": text}
        if (provider := outcome.provider) is not None:
            answer = "".join(parts)
            traces.llm(generating, provider.name, provider.model, outcome.cached, messages, answer, self.tokenizer)
            if not outcome.cached and outcome.truncated is None and answer.strip():
                body = orjson.dumps({"answer": answer})
                await self.cache.set("answer", cache_key(provider), body, self.s.cache_ttl_answer_s)
            yield "citations", {"citations": citations(answer, context)}
            done = self._done(answer, provider.name, provider.model, outcome.cached, outcome.attempts, start)
            if outcome.truncated:
                done["truncated"] = outcome.truncated
            yield "done", done
            return
        if not context:
            reason = "no passages retrieved"
        elif not self.chain.providers:
            reason = "no LLM provider is configured (LLM_PROVIDERS)"
        else:
            reason = "; ".join(f"{a.provider}: {a.error}" for a in outcome.attempts)
        answer = extractive(search_query or question, context)
        yield "token", {"text": answer}
        yield "citations", {"citations": citations(answer, context)}
        yield "done", {**self._done(answer, "extractive", None, False, outcome.attempts, start), "reason": reason}

    @staticmethod
    def _done(
        answer: str, provider: str, model: str | None, cached: bool, attempts: list[Attempt], start: float
    ) -> dict[str, Any]:
        return {
            "answer": answer,
            "provider": provider,
            "model": model,
            "cached": cached,
            "fallbacks": [{"provider": a.provider, "error": a.error} for a in attempts],
            "generate_ms": round((time.perf_counter() - start) * 1000, 3),
        }
