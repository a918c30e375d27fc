"""Text normalisation: the one step every text passes before tokenisation.

Archives mix Traditional and Simplified script, full-width characters, HTML
fragments from web forms, control characters from broken exports and lone
surrogates from bad decoding. The model was trained on Simplified,
NFKC-folded, single-spaced text, so everything is brought to that form here,
and anything odd about the input is reported as a warning or an error rather
than raised.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Longest text kept before tokenisation. The model reads far fewer tokens
# (see modeling.encode); this bound only keeps cleanup and OpenCC cheap on a
# 100k-character cell. Clipping keeps the head and the tail, as the tokeniser does.
MAX_CHARS = 2000
HEAD_SHARE = 0.75

# Traditional (Taiwan forms and phrasing first, then Hong Kong forms) to
# mainland Simplified. Both are no-ops on text that is already Simplified.
OPENCC_CONFIGS = ("tw2sp", "hk2s")

ERROR_NOT_A_STRING = "not_a_string"
ERROR_EMPTY = "empty_text"
WARNING_TRUNCATED = "truncated"
WARNING_NO_CHINESE = "no_chinese_characters"
WARNING_CHARACTERS_REMOVED = "invalid_characters_removed"

_SURROGATES = re.compile("[\ud800-\udfff]")
_TAG = re.compile(r"<[A-Za-z/!][^<>]{0,500}>")
_WHITESPACE = re.compile(r"\s+")
_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _converters() -> tuple[Any, ...]:
    import opencc

    return tuple(opencc.OpenCC(config) for config in OPENCC_CONFIGS)


def to_simplified(text: str) -> str:
    """Convert Traditional Chinese (Taiwan and Hong Kong usage) to Simplified."""
    for converter in _converters():
        text = converter.convert(text)
    return text


def clip(text: str, max_chars: int = MAX_CHARS) -> str:
    """Keep the first 3/4 and the last 1/4 of ``max_chars`` characters.

    Complaints state the problem first and the demand last, so both ends are kept.
    """
    if len(text) <= max_chars:
        return text
    head = int(max_chars * HEAD_SHARE)
    return text[:head] + text[len(text) - (max_chars - head):]


def _drop_control(text: str) -> tuple[str, bool]:
    """Drop control, format, private-use and unassigned code points.

    Line breaks and tabs become spaces; the rest (NUL bytes from broken exports,
    zero-width marks) carry no meaning. Also says whether anything was dropped.
    """
    if text.isprintable():  # the common case: nothing to drop, skip the per-character loop
        return text, False
    out = []
    dropped = False
    for ch in text:
        if ch in "\t\n\r\x0b\x0c":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn"):
            dropped = True
        else:
            out.append(ch)
    return "".join(out), dropped


@dataclass
class NormalizedText:
    """A normalised text, or the reason there is none, plus what was changed."""

    text: str | None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def normalize(value: Any, max_chars: int = MAX_CHARS) -> NormalizedText:
    """Normalise one input value; never raises.

    Steps: drop lone surrogates, strip HTML tags and entities, NFKC (full-width
    folding), drop control characters, collapse whitespace, clip head+tail to
    ``max_chars``, OpenCC Traditional to Simplified.
    """
    if not isinstance(value, str):
        return NormalizedText(None, error=f"{ERROR_NOT_A_STRING}: expected str, got {type(value).__name__}")
    warnings: list[str] = []
    text = value
    if _SURROGATES.search(text):
        text = _SURROGATES.sub("", text)
        warnings.append(WARNING_CHARACTERS_REMOVED)
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = unicodedata.normalize("NFKC", text)
    text, dropped = _drop_control(text)
    if dropped and WARNING_CHARACTERS_REMOVED not in warnings:
        warnings.append(WARNING_CHARACTERS_REMOVED)
    text = _WHITESPACE.sub(" ", text).strip()
    if not text:
        return NormalizedText(None, warnings, error=ERROR_EMPTY)
    if len(text) > max_chars:
        text = clip(text, max_chars)
        warnings.append(WARNING_TRUNCATED)
    text = to_simplified(text)
    if not _CJK.search(text):
        warnings.append(WARNING_NO_CHINESE)
    return NormalizedText(text, warnings)


def normalize_text(text: str) -> str:
    """Normalise a string known to be valid (training data); raises on empty text."""
    result = normalize(text)
    if result.text is None:
        raise ValueError(f"cannot normalise {text!r}: {result.error}")
    return result.text
