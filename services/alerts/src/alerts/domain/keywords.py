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
def compile_keywords(keywords: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching any of ``keywords`` on :func:`normalize`d text."""
    parts = []
    for keyword in keywords:
        prefix = keyword.endswith("*")
        words = normalize(keyword.removesuffix("*")).split()
        body = r"\s+".join(re.escape(w) for w in words)
        parts.append(rf"(?<!\w){body}" + (r"\w*" if prefix else r"(?!\w)"))
    return re.compile("|".join(f"({p})" for p in parts))


def matched_keywords(keywords: tuple[str, ...], comment: str | None) -> tuple[str, ...]:
    """The configured keywords found in ``comment``, in configuration order (empty when none)."""
    if not comment:
        return ()
    pattern = compile_keywords(keywords)
    found: set[int] = set()
    for match in pattern.finditer(normalize(comment)):
        found.update(i for i, group in enumerate(match.groups()) if group is not None)
    return tuple(keywords[i] for i in sorted(found))
