"""Clicks and scribbles kept as promises on the final alpha (plugin/input_constraints.py)."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.input_constraints import honour_inputs, input_radius
from plugin.prompts import Prompts


def person_coarse(h: int = 200, w: int = 300) -> np.ndarray:
    """ISCN's coarse mask: a 'person' rectangle x 100-199, y 40-179."""
    c = np.zeros((h, w), np.float32)
    c[40:180, 100:200] = 1.0
    return c


def test_reach_is_a_fraction_of_the_longer_side() -> None:
    assert input_radius(200, 300) == 6
    assert input_radius(3000, 4000) == 80
    assert input_radius(16, 16) == 1


def test_foreground_click_restores_the_persons_pixels_mrn_erased_and_stops_at_the_outline() -> None:
    coarse = person_coarse()
    alpha = coarse.copy()
    alpha[40:180, 100:125] = 0.1  # MRN erased the person's left part, where the user clicks
    out = honour_inputs(alpha, coarse, Prompts(clicks=[(103.5, 100.5, True)]))
    r = input_radius(*alpha.shape)
    assert out[100, 103] == 1.0 and out[100, 103 + r - 1] == 1.0  # the disk inside the person
    assert np.all(out[:, :100] == alpha[:, :100])  # never past the coarse outline into background
    assert out[100, 103 + r + 2] == pytest.approx(0.1)  # nor beyond the reach
    assert np.count_nonzero(out != alpha) > 0.3 * np.pi * r * r
    assert alpha[100, 103] == pytest.approx(0.1)  # the caller's array is not touched


def test_background_click_clears_what_mrn_added_outside_the_coarse_mask() -> None:
    coarse = person_coarse()
    alpha = coarse.copy()
    alpha[60:120, 200:230] = 0.9  # a spill to the right of the person
    out = honour_inputs(alpha, coarse, Prompts(clicks=[(205.5, 90.5, False)]))
    assert out[90, 205] == 0.0 and out[90, 201] == 0.0
    assert np.all(out[40:180, 100:200] == 1.0)  # the person itself is kept
    assert out[90, 228] == pytest.approx(0.9)  # the spill beyond the reach stays


def test_an_input_the_decoder_overruled_gets_only_a_small_dot() -> None:
    coarse = person_coarse()
    alpha = coarse.copy()
    out = honour_inputs(alpha, coarse, Prompts(clicks=[(30.5, 30.5, True)]))  # fg click in background
    changed = np.argwhere(out != alpha)
    r = input_radius(*alpha.shape)
    assert out[30, 30] == 1.0
    assert len(changed) > 0 and np.abs(changed - (30, 30)).max() <= max(1, r // 4)


def test_a_scribble_paints_a_band_along_its_stroke_inside_the_agreeing_region() -> None:
    coarse = person_coarse()
    alpha = coarse.copy()
    alpha[40:180, 140:160] = 0.0  # MRN cut a vertical gap through the person
    stroke = [(150.5, 60.5), (150.5, 160.5)]
    out = honour_inputs(alpha, coarse, Prompts(scribbles=[(stroke, True)]))
    r = input_radius(*alpha.shape)
    assert np.all(out[60:161, 150 - r + 1: 150 + r] == 1.0)
    assert np.all(out[:40] == alpha[:40]) and np.all(out[181:] == alpha[181:])


def test_later_inputs_win_and_boxes_or_text_change_nothing() -> None:
    coarse = person_coarse()
    alpha = np.full(coarse.shape, 0.5, np.float32)
    assert np.array_equal(honour_inputs(alpha, coarse, Prompts(boxes=[(90, 30, 210, 190)], texts=["her"])), alpha)
    scribble_fg = ([(140.5, 100.5), (160.5, 100.5)], True)
    out = honour_inputs(alpha, coarse, Prompts(scribbles=[scribble_fg], clicks=[(150.5, 100.5, False)]))
    assert out[100, 150] == 0.0  # the click (applied after scribbles) wins at its dot
    assert out[100, 141] == 1.0


def test_inputs_on_the_image_edge_and_bad_shapes() -> None:
    coarse = np.ones((50, 60), np.float32)
    out = honour_inputs(np.zeros((50, 60), np.float32), coarse, Prompts(clicks=[(60.0, 50.0, True)]))
    assert out[49, 59] == 1.0 and out[0, 0] == 0.0
    with pytest.raises(ValueError, match="one shape"):
        honour_inputs(np.zeros((50, 60)), np.zeros((60, 50)), Prompts(clicks=[(1, 1, True)]))


def test_soft_coarse_values_stay_soft_a_foreground_input_only_raises_alpha_to_them() -> None:
    coarse = person_coarse()
    coarse[40:180, 100:130] = 0.7  # the decoder was less sure of the left part (hair, say)
    alpha = coarse.copy()
    alpha[40:180, 100:130] = 0.2
    alpha[100, 120] = 0.9  # MRN's own higher value is kept
    out = honour_inputs(alpha, coarse, Prompts(clicks=[(115.5, 100.5, True)]))
    assert out[100, 115] == pytest.approx(0.7) and out[100, 110] == pytest.approx(0.7)
    assert out[100, 120] == pytest.approx(0.9)
