"""A corrected transcript's words put on the recognised words' times.

The creator fixes words in the text; the times stay those Whisper heard. The two word
lists are matched with difflib's SequenceMatcher (the standard library's longest-match
aligner, on words compared without case or punctuation):
- a kept word keeps its time span (its spelling and punctuation may change);
- a replaced run of words is replaced by the new run over the same span, shared in
  proportion to the words' lengths;
- inserted words share the span of the word before them (of the first word, at the start);
- a removed word's span goes to the word before it, so the caption does not blink off.

Why not an acoustic aligner (pocketsphinx's set_align_text): an edit fixes the words, not
their times; Whisper's times are what the parts were cut and captioned on, and keeping
them keeps the subtitles and the burned-in captions where they were.
"""

from __future__ import annotations

import string
from dataclasses import replace
from difflib import SequenceMatcher

from vidprod.media.speech import Word

# A typed word is as sure as a heard one can be.
TYPED_CONFIDENCE = 1.0
MAX_TEXT_CHARS = 100_000


class EditError(ValueError):
    """The corrected text cannot be used; the message says why."""


def _key(text: str) -> str:
    return text.strip(string.punctuation + "“”‘’").lower()


def retime(words: list[Word], text: str) -> list[Word]:
    """`text`'s words, each with a start and end taken from `words` (see the module)."""
    if len(text) > MAX_TEXT_CHARS:
        raise EditError(f"The transcript is too long: at most {MAX_TEXT_CHARS} characters.")
    typed = text.split()
    if typed and not words:
        raise EditError("This video has no recognised words to put new ones on.")
    matcher = SequenceMatcher(a=[_key(w.text) for w in words], b=[_key(t) for t in typed], autojunk=False)
    out: list[Word] = []
    leading: list[str] = []  # words typed before the first recognised one
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for i, j in zip(range(i1, i2), range(j1, j2)):
                out.append(replace(words[i], text=typed[j]))
        elif tag == "replace":
            out += _share(words[i1].start, words[i2 - 1].end, typed[j1:j2])
        elif tag == "insert":
            if out:
                last = out.pop()
                out += _share(last.start, last.end, [last.text, *typed[j1:j2]], keep=last)
            else:
                leading = typed[j1:j2]
        elif tag == "delete" and out:
            out[-1] = replace(out[-1], end=max(out[-1].end, words[i2 - 1].end))
        if leading and out and tag != "insert":
            first = out.pop(0)
            out[:0] = _share(first.start, first.end, [*leading, first.text], keep=first, last=True)
            leading = []
    return out


def _share(start: float, end: float, texts: list[str], *, keep: Word | None = None,
           last: bool = False) -> list[Word]:  # fmt: skip
    """`texts` over [start, end], each a share in proportion to its length. `keep`: a
    recognised word among them (first, or `last`) that keeps its confidence."""
    weights = [max(1, len(t)) for t in texts]
    total = sum(weights)
    shared, at = [], start
    for n, (text, weight) in enumerate(zip(texts, weights)):
        until = end if n == len(texts) - 1 else at + (end - start) * weight / total
        mine = keep is not None and n == (len(texts) - 1 if last else 0)
        shared.append(Word(text, round(at, 3), round(until, 3), keep.confidence if mine else TYPED_CONFIDENCE))
        at = until
    return shared
