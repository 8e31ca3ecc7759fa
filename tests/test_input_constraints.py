"""Clicks and scribbles kept as promises on the final alpha (plugin/input_constraints.py)."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.input_constraints import input_radius, keep_inputs
from plugin.prompts import Prompts


def test_footprint_is_a_fraction_of_the_longer_side() -> None:
    assert input_radius(384, 384) == 2
    assert input_radius(768, 1024) == 5
    assert input_radius(3000, 4000) == 20
    assert input_radius(16, 16) == 1


def test_a_foreground_click_pins_its_dot_and_nothing_else() -> None:
    alpha = np.full((200, 300), 0.1, np.float32)
    out = keep_inputs(alpha, Prompts(clicks=[(103.5, 100.5, True)]))  # radius 2 on 300 px
    assert out[100, 103] == 1.0 and out[100, 105] == 1.0 and out[102, 103] == 1.0
    changed = np.argwhere(out != alpha)
    assert np.abs(changed - (100, 103)).max() == 2 and len(changed) <= 25
    assert alpha[100, 103] == pytest.approx(0.1)  # the caller's array is not touched


def test_a_background_scribble_clears_a_band_along_its_stroke() -> None:
    alpha = np.ones((200, 300), np.float32)
    out = keep_inputs(alpha, Prompts(scribbles=[([(50.5, 60.5), (50.5, 160.5), (150.5, 160.5)], False)]))
    assert np.all(out[60:161, 48:53] == 0.0) and np.all(out[158:163, 50:151] == 0.0)
    assert np.all(out[:57] == 1.0) and np.all(out[:150, 55:] == 1.0)
    assert np.all(out[:, :47] == 1.0)


def test_later_inputs_win_and_boxes_or_text_change_nothing() -> None:
    alpha = np.full((200, 300), 0.5, np.float32)
    assert np.array_equal(keep_inputs(alpha, Prompts(boxes=[(90, 30, 210, 190)], texts=["her"])), alpha)
    out = keep_inputs(alpha, Prompts(scribbles=[([(140.5, 100.5), (160.5, 100.5)], True)],
                                       clicks=[(150.5, 100.5, False)]))
    assert out[100, 150] == 0.0  # the click, applied after scribbles, wins where they overlap
    assert out[100, 141] == 1.0 and out[100, 159] == 1.0


def test_inputs_on_the_image_edge_and_bad_shapes() -> None:
    out = keep_inputs(np.zeros((50, 60), np.float32), Prompts(clicks=[(60.0, 50.0, True)]))
    assert out[49, 59] == 1.0 and out[0, 0] == 0.0
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        keep_inputs(np.zeros((50, 60, 3)), Prompts(clicks=[(1, 1, True)]))
