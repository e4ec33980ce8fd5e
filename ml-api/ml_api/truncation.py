"""Bounded tokenisation: with truncation on, a huge text costs about what a max_length text costs.

Tokenizers split the normalised text into words (the pre-tokenizer) and apply the model to each word on its
own (WordPiece, BPE and Unigram alike); normalisers act on single characters or close neighbours. So a prefix
of a text tokenises like the whole text except in the word or two that the cut may have split. We encode
growing prefixes (suffixes when truncating on the left) until the tokens of the words before the last
SAFE_WORDS (after the first SAFE_WORDS, for suffixes) number more than the limit; the truncating tokenizer then
cuts that prefix to exactly the ids it would have cut from the whole text (tests/test_truncation.py compares
them on tricky texts and several tokenizer families).

A prefix that never closes enough words (megabytes without a space, or of whitespace) grows to the whole text.
For BERT-style WordPiece tokenizers (most embedders and cross-encoders) such a text is first rewritten, once,
into one that tokenises to the same ids (`compactor`): a whitespace run becomes one space (the pre-tokenizer
drops whitespace), a letter/digit or combining-mark run over WordPiece's max_input_chars_per_word keeps a
little more than that (the word is one [UNK] either way), a run of controls keeps one (the normaliser deletes
them). Still read in full, at about 1 µs a character: megabytes of one word made of symbols (`€€€…`) for
BERT-style tokenizers, and one endless word or whitespace run for other tokenizer families.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Literal

from tokenizers import Encoding, Tokenizer

Direction = Literal["right", "left"]

CHARS_PER_TOKEN = 8  # first probe: `limit` tokens rarely need more characters than this (then it doubles)
SAFE_WORDS = 2  # words at the cut that may tokenise differently (a split word, a whitespace run before it)
COMPACT_AFTER = 16  # probes grown this many times past the first one: the text resists, compact it once

# Characters that are White_Space but not "other" (C*): BertNormalizer keeps them as a space (clean_text) or as
# they are, and BertPreTokenizer drops them between words either way.
_BERT_SPACE = "[ \t\n\r\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
# Letters and digits except the CJK ideographs that BertNormalizer splits into words of their own.
_CJK_RANGES = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK = re.compile(f"[{_CJK_RANGES}]")
_WORD_CHAR = f"[^\\W_{_CJK_RANGES}]"
_MARKS = "[\u0300-\u036f\u1dc0-\u1dff]"  # combining diacritics (all Mn)
# Controls and format characters (Unicode "other") that BertNormalizer's clean_text deletes; \t\n\r\x0b\x0c\x85
# are left out, as they are whitespace.
_CONTROLS = "[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\ufffd]"


def compactor(tokenizer: Tokenizer) -> Callable[[str], str] | None:
    """A cheap rewrite that keeps a BERT-style tokenizer's ids (None for any other kind of tokenizer)."""
    spec = json.loads(tokenizer.to_str())
    model, pre, norm = spec.get("model") or {}, spec.get("pre_tokenizer") or {}, spec.get("normalizer")
    if model.get("type") != "WordPiece" or pre.get("type") != "BertPreTokenizer":
        return None
    if norm is not None and norm.get("type") != "BertNormalizer":
        return None
    keep = int(model.get("max_input_chars_per_word", 100)) + 1
    space = re.compile(_BERT_SPACE)
    for added in spec.get("added_tokens") or []:  # a rewrite must not make or break an added token's match
        content = str(added.get("content", ""))
        if space.search(content) or len(content) > keep or re.fullmatch(f"{_WORD_CHAR}*", content):
            return None
    rules: list[tuple[re.Pattern[str], Callable[[str], str]]] = []
    if norm is not None and norm.get("clean_text", True):  # BertNormalizer deletes controls: one is as many
        rules.append((re.compile(f"{_CONTROLS}{{2,}}"), lambda run: run[0]))
    rules += [
        (re.compile(f"{_BERT_SPACE}{{2,}}"), lambda run: " "),  # the pre-tokenizer drops whitespace
        (re.compile(f"{_MARKS}{{{keep + 1},}}"), lambda run: run[:keep]),  # stripped, or an [UNK] word either way
        (re.compile(f"{_WORD_CHAR}{{{keep + 1},}}"), lambda run: run[:keep]),  # one [UNK] word either way
    ]

    def compact(text: str) -> str:
        for pattern, replace in rules:
            text = pattern.sub(lambda m, replace=replace: replace(m.group()), text)
        return text

    return compact


def stable_tokens(word_ids: list[int | None], direction: Direction) -> int:
    """How many tokens at the kept end come from words the cut cannot have changed."""
    words = [w for w in word_ids if w is not None]
    if not words:
        return 0
    if direction == "right":
        edge = words[-1] - SAFE_WORDS  # last word index still kept whole
        return sum(1 for w in words if w <= edge)
    edge = words[0] + SAFE_WORDS
    return sum(1 for w in words if w >= edge)


def encode_bounded(
    tokenizer: Tokenizer,
    text: str,
    limit: int,
    direction: Direction = "right",
    compact: Callable[[str], str] | None = None,
) -> tuple[Encoding, bool]:
    """Encode (no special tokens, no truncation) just enough of `text` to decide its first (last) `limit` tokens.

    `tokenizer` must not truncate. Returns the encoding and whether it covers the whole text; when it does not,
    the whole text has more than `limit` tokens and agrees with the encoding on the `limit` tokens at the kept
    end, so truncating either gives the same ids.
    """
    size = max(limit, 1) * CHARS_PER_TOKEN
    compact_at = size * COMPACT_AFTER if compact else None
    while size < len(text):
        if compact_at is not None and compact is not None and size >= compact_at:
            text, compact_at = compact(text), None  # once, and only for texts that resist plain prefixes
            continue
        piece = text[:size] if direction == "right" else text[-size:]
        encoding = tokenizer.encode(piece, add_special_tokens=False)
        if stable_tokens(encoding.word_ids, direction) > limit:
            return encoding, False
        size *= 2
    return tokenizer.encode(text, add_special_tokens=False), True


def encode_all(
    probe: Tokenizer,
    final: Tokenizer,
    texts: list[str],
    limit: int,
    direction: Direction = "right",
    add_special_tokens: bool = True,
    compact: Callable[[str], str] | None = None,
) -> list[tuple[Encoding, bool]]:
    """`final.encode_batch(texts)`, with every long text encoded through `encode_bounded` first.

    `probe` is `final` without truncation; `compact` is `compactor(probe)`. Each result comes with whether the
    whole text was read: False means the text has more than `limit` tokens (for callers refusing long inputs).
    """
    threshold = max(limit, 1) * CHARS_PER_TOKEN
    results: list[tuple[Encoding, bool] | None] = [None] * len(texts)
    short = [i for i, text in enumerate(texts) if len(text) <= threshold]
    if len(short) == 1:  # a search box's query: encode_batch costs about 30 µs more for one text (measured)
        encoded = [final.encode(texts[short[0]], add_special_tokens=add_special_tokens)]
    else:
        encoded = final.encode_batch([texts[i] for i in short], add_special_tokens=add_special_tokens)
    for i, encoding in zip(short, encoded, strict=True):
        results[i] = (encoding, True)
    for i, text in enumerate(texts):
        if results[i] is None:
            encoding, whole = encode_bounded(probe, text, limit, direction, compact)
            results[i] = (final.post_process(encoding, None, add_special_tokens=add_special_tokens), whole)
    return [r for r in results if r is not None]
