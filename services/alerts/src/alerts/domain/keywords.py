"""Comment keywords: whole words, case- and accent-insensitive (``Résilier`` matches ``resilier``).

A keyword ending in ``*`` matches as a prefix (``cancel*`` finds "cancelling"); a phrase matches its words
in order with any spacing between them.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache


def normalize(text: str) -> str:
    """Casefolded text with accents removed (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


@lru_cache(maxsize=256)
def compile_keywords(keywords: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """One pattern per keyword, each matching on :func:`normalize`d text."""
    patterns = []
    for keyword in keywords:
        prefix = keyword.endswith("*")
        words = normalize(keyword.removesuffix("*")).split()
        body = r"\s+".join(re.escape(w) for w in words)
        patterns.append(re.compile(rf"(?<!\w){body}" + (r"\w*" if prefix else r"(?!\w)")))
    return tuple(patterns)


def matched_keywords(keywords: tuple[str, ...], comment: str | None) -> tuple[str, ...]:
    """The configured keywords found in ``comment``, in configuration order (empty when none)."""
    if not comment:
        return ()
    text = normalize(comment)
    return tuple(k for k, pattern in zip(keywords, compile_keywords(keywords), strict=True) if pattern.search(text))
