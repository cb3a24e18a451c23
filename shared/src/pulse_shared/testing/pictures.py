"""Screenshot comparison for browser tests."""

from __future__ import annotations

from PIL import Image, ImageChops

#: A channel differing by more than this (of 255) is a visible change; less is anti-aliasing noise.
VISIBLE = 40


def changed_share(expected: Image.Image, actual: Image.Image) -> float:
    """The share of pixels that differ visibly: anti-aliasing noise passes, a moved or recoloured element does
    not. Pictures of different sizes differ entirely."""
    if expected.size != actual.size:
        return 1.0
    diff = ImageChops.difference(expected.convert("RGB"), actual.convert("RGB")).convert("L")
    changed = sum(count for value, count in enumerate(diff.histogram()) if value > VISIBLE)
    return changed / (expected.size[0] * expected.size[1])
