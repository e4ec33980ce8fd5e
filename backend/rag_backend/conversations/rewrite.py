"""Follow-up questions as standalone search queries.

"And how much does it cost?" means nothing to a retriever: the subject is in an earlier turn. With a conversation,
the question is rewritten from the recent turns before retrieval:

- by the LLM chain when one answers, in a short prompt of its own (CONVERSATION_REWRITE_TOKENS of output,
  CONVERSATION_REWRITE_TIMEOUT_S in all): a reply that is empty, too long or late is not used;
- else deterministically: *only* when the question reads as a follow-up (a referring pronoun with few content words
  of its own, an opening such as "and ..."/"what about ...", an ellipsis, or a question of one or two content words)
  the previous turn's key terms are added to it. A self-contained question is searched as asked: carrying the last
  topic into an unrelated question would only pull the old passages back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag_backend.llm import Chain, Message, Outcome

_WORD = re.compile(r"\w+", re.UNICODE)
_CITATION = re.compile(r"\s*\[\d{1,3}(?:\s*,\s*\d{1,3})*\]")
# Words that point back to something said before.
_REFERRING = frozenset(
    "it its itself they them their theirs themselves this these those he him his she her hers ones former "
    "latter".split()
)
# Openings that continue the previous question ("and ...", "what about ...").
_CONTINUING = re.compile(
    r"^\s*(?:and|also|but|or|so|then|what about|how about|what else|anything else|same for|more on|more about|"
    r"compared to|versus|vs\.?)\b",
    re.IGNORECASE,
)
_STOPWORDS = frozenset(
    "a an and are as at be been being but by can could do does did doing for from had has have having how i if in "
    "into is it its of on or so than that the their them then there these they this to too was were what when "
    "where which who whom whose why will with would you your me my we our us about also any anything else more "
    "much many some tell explain describe give show please should shall may might must not no yes".split()
)
_THAT_AS_PRONOUN = frozenset("is was does do did has have can could will would mean means work works help cost".split())
_DUMMY_IT = frozenset(
    "true possible likely known safe better worse important necessary common normal ok okay good bad the".split()
)  # "is it true that ...": an "it" that refers to nothing
FOLLOWUP_MAX_CONTENT_WORDS = 4  # "and ..." with more words of its own than this is a new question
REFERRING_MAX_CONTENT_WORDS = 6  # a question with a pronoun and more words of its own than this stands on its own
SHORT_QUESTION_WORDS = 1  # a question of this many content words or fewer borrows its subject
CARRIED_TERMS = 8
REWRITE_PROMPT = (
    "Rewrite the user's last question as one standalone search query, using the conversation to resolve what "
    "pronouns and short references point to. Keep the question's own words and language; add only the subject it "
    "refers to. If the question is already self-contained, repeat it unchanged. Reply with the query only."
)
MAX_REWRITE_CHARS = 512


def content_words(text: str) -> list[str]:
    """Lower-cased words that carry meaning (no stopwords, no referring words, no bare numbers), in order, once."""
    out: list[str] = []
    for word in _WORD.findall(text.lower()):
        if _is_content(word) and word not in out:
            out.append(word)
    return out


def _is_content(word: str) -> bool:
    return not (word in _STOPWORDS or word in _REFERRING or len(word) < 2 or word.isdigit())


def _refers(words: list[str]) -> bool:
    """A pronoun that points outside the question: one with at most one content word before it ("does it bind
    Dicer?", "what do these cells do?") or at its end ("what is known about them?"). One that follows its own
    antecedent ("spores can be disposed of after they are dispersed") or a dummy "it" ("is it true that ...") does
    not; nor "that" unless it stands for a thing ("does that help?", not "evidence that X causes Y")."""
    for i, word in enumerate(words):
        if word == "it" and i + 1 < len(words) and words[i + 1] in _DUMMY_IT:
            continue
        if word == "that" and not (i == len(words) - 1 or words[i + 1] in _THAT_AS_PRONOUN):
            continue
        if word in _REFERRING or word == "that":
            before = sum(1 for w in words[:i] if _is_content(w))
            if before <= 1 or i >= len(words) - 2:
                return True
    return False


def is_followup(question: str) -> bool:
    """Whether the question leans on an earlier turn for its subject (see the module's docstring)."""
    words = [w.lower() for w in _WORD.findall(question)]
    if not words:
        return False
    own = content_words(question)
    stripped = question.strip()
    if _CONTINUING.match(stripped):
        return len(own) <= FOLLOWUP_MAX_CONTENT_WORDS
    if stripped.startswith(("...", "…")) or stripped.rstrip("?!. ").endswith(("...", "…")):
        return True
    if _refers(words) and len(own) <= REFERRING_MAX_CONTENT_WORDS:
        return True
    return len(own) <= SHORT_QUESTION_WORDS


@dataclass(slots=True)
class Turn:
    """One earlier question of the conversation, what was searched for it and the answer it got."""

    question: str
    search_query: str
    answer: str


def without_markers(answer: str) -> str:
    """An earlier answer without its [n] citation markers: they numbered that turn's sources, not the next one's."""
    return _CITATION.sub("", answer)


def turns(messages: Sequence[dict[str, Any]]) -> list[Turn]:
    """Question/answer pairs from stored messages, oldest first (a question without its answer counts too)."""
    out: list[Turn] = []
    for m in messages:
        if m["role"] == "user":
            out.append(Turn(m["content"], m.get("search_query") or m["content"], ""))
        elif out and not out[-1].answer:
            out[-1].answer = m["content"]
    return out


def fallback(question: str, history: Sequence[Turn]) -> str:
    """The question with the previous turn's key terms added, when it is a follow-up; else the question as is.

    The terms are the content words of what the latest turn searched (already standalone: a follow-up before it
    carried its subject on), leaving out words the question has already; an older turn only when the latest names
    nothing. Never older topics beside the latest: after a change of subject, "and its price?" is about the new one."""
    question = " ".join(question.split())
    if not history or not is_followup(question):
        return question
    have = set(content_words(question))
    carried: list[str] = []
    for turn in reversed(history):  # the latest turn that names something: it already carries its own subject
        carried = [w for w in content_words(turn.search_query) if w not in have]
        if carried:
            break
    return f"{question} {' '.join(carried[:CARRIED_TERMS])}".strip() if carried else question


def _rewrite_messages(question: str, history: Sequence[Turn]) -> list[Message]:
    lines = []
    for turn in history:
        lines.append(f"User: {turn.question}")
        if turn.answer:
            lines.append(f"Assistant: {without_markers(turn.answer)[:600]}")
    convo = "\n".join(lines)
    user = f"Conversation:\n{convo}\n\nLast question: {question}\n\nStandalone search query:"
    return [{"role": "system", "content": REWRITE_PROMPT}, {"role": "user", "content": user}]


def _clean(reply: str) -> str | None:
    """The model's reply as a query: its first line without quotes or a label; None when it is unusable."""
    line = next((ln.strip() for ln in reply.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:standalone )?(?:search )?query:\s*", "", line, flags=re.IGNORECASE).strip().strip("\"'`“”")
    if not line or len(line) > MAX_REWRITE_CHARS:
        return None
    return line


@dataclass(slots=True)
class Rewritten:
    query: str
    by: str  # "none" (no earlier turn), "llm" or "fallback"
    reason: str | None = None  # why the LLM's rewriting was not used


async def rewrite(
    question: str, history: Sequence[Turn], chain: Chain | None, max_tokens: int, timeout_s: float
) -> Rewritten:
    """The standalone search query for `question` after `history` (the recent turns, oldest first)."""
    if not history:
        return Rewritten(question, "none")
    reason = "no LLM provider is configured"
    if chain is not None and chain.providers:
        outcome = Outcome()
        parts: list[str] = []
        try:
            async with asyncio.timeout(timeout_s):
                async for text in chain.stream(_rewrite_messages(question, history), outcome, max_tokens=max_tokens):
                    parts.append(text)
        except TimeoutError:
            reason = f"the LLM did not rewrite within {timeout_s:g}s"
        else:
            if outcome.provider is not None and outcome.truncated is None and (query := _clean("".join(parts))):
                return Rewritten(query, "llm")
            reason = "; ".join(f"{a.provider}: {a.error}" for a in outcome.attempts) or "the LLM's reply was unusable"
    return Rewritten(fallback(question, history), "fallback", reason)
