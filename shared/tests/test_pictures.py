"""The screenshot comparison the widget's browser test relies on."""

import pytest
from PIL import Image

from pulse_shared.testing.pictures import changed_share


def test_the_pixel_comparison_sees_a_changed_button_and_not_noise() -> None:
    base = Image.new("RGB", (100, 100), "white")
    moved = base.copy()
    moved.paste((15, 118, 110), (10, 10, 30, 30))
    noisy = base.copy()
    noisy.paste((230, 230, 230), (0, 0, 100, 100))  # every pixel off by 25: below visible
    assert changed_share(base, base.copy()) == 0
    assert changed_share(base, noisy) == 0
    assert changed_share(base, moved) == pytest.approx(0.04)
    assert changed_share(base, Image.new("RGB", (100, 99), "white")) == 1.0
