"""The torch-free prompt contract: validation, array layout, accumulation across rounds."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.prompts import (
    KIND_BOX,
    KIND_CLICK,
    KIND_SCRIBBLE,
    POINTS_PER_PROMPT,
    Prompts,
    box_points,
    collate_prompts,
    encode_prompts,
    resample_polyline,
)


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (Prompts(), "no inputs"),
        (Prompts(texts=["   "]), "no inputs"),
        (Prompts(clicks=[(101, 5, True)]), "click 1"),
        (Prompts(clicks=[(5, 5, True), (5, -1, False)]), "click 2"),
        (Prompts(scribbles=[([], True)]), "scribble 1: it has no points"),
        (Prompts(scribbles=[([(1, 1), (2, 80)], True)]), "scribble 1, point 2"),
        (Prompts(boxes=[(10, 10, 10, 40)]), "box 1"),
        (Prompts(boxes=[(30, 10, 20, 40)]), "degenerate"),
        (Prompts(boxes=[(0, 0, 120, 40)]), "box 1 corner (x1, y1)"),
        (Prompts(clicks=[(float("nan"), 3, True)]), "not finite"),
    ],
)
def test_bad_inputs_name_the_input(prompts: Prompts, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        prompts.validate(100, 60)


def test_edges_of_the_image_are_inside() -> None:
    Prompts(clicks=[(0, 0, True), (100, 60, False)], boxes=[(0, 0, 100, 60)]).validate(100, 60)


def test_resample_polyline_is_even_by_arc_length() -> None:
    pts = resample_polyline([(0, 0), (10, 0), (10, 5)], count=4)
    assert pts.shape == (4, 2)
    np.testing.assert_allclose(pts, [[0, 0], [5, 0], [10, 0], [10, 5]])
    single = resample_polyline([(3, 4)], count=5)
    np.testing.assert_allclose(single, np.tile([3, 4], (5, 1)))


def test_box_points_start_with_corners_and_stay_inside() -> None:
    pts = box_points((10, 20, 50, 80))
    assert pts.shape == (POINTS_PER_PROMPT, 2)
    np.testing.assert_allclose(pts[:4], [[10, 20], [50, 20], [50, 80], [10, 80]])
    assert (pts[4:, 0] > 10).all() and (pts[4:, 0] < 50).all()
    assert (pts[4:, 1] > 20).all() and (pts[4:, 1] < 80).all()


def test_encode_lays_out_every_kind_normalised() -> None:
    p = Prompts(
        clicks=[(50, 30, True)],
        scribbles=[([(0, 0), (100, 60)], False)],
        boxes=[(10, 6, 90, 54)],
        texts=["the woman on the left", "in red"],
    )
    a = encode_prompts(p, 100, 60)
    assert a.points.shape == (1, 3, POINTS_PER_PROMPT, 2)
    assert a.kinds.tolist() == [[KIND_CLICK, KIND_SCRIBBLE, KIND_BOX]]
    assert a.labels.tolist() == [[1, 0, 1]]
    assert a.valid.tolist() == [[1.0, 1.0, 1.0]]
    np.testing.assert_allclose(a.points[0, 0], np.tile([0.5, 0.5], (POINTS_PER_PROMPT, 1)))
    np.testing.assert_allclose(a.points[0, 1, 0], [0, 0])
    np.testing.assert_allclose(a.points[0, 1, -1], [1, 1])
    np.testing.assert_allclose(a.points[0, 2, 0], [0.1, 0.1], atol=1e-6)
    assert a.texts == ["the woman on the left. in red"]


def test_text_only_has_one_invalid_visual_slot() -> None:
    a = encode_prompts(Prompts(texts=["the man"]), 64, 64)
    assert a.points.shape[1] == 1 and a.valid.tolist() == [[0.0]]


def test_collate_pads_with_invalid_slots() -> None:
    a = encode_prompts(Prompts(clicks=[(1, 1, True)]), 10, 10)
    b = encode_prompts(Prompts(clicks=[(1, 1, True), (2, 2, False)], boxes=[(1, 1, 5, 5)]), 10, 10)
    c = collate_prompts([a, b])
    assert c.points.shape == (2, 3, POINTS_PER_PROMPT, 2)
    assert c.valid.tolist() == [[1, 0, 0], [1, 1, 1]]
    assert len(c.texts) == 2


def test_rounds_accumulate_without_repeats() -> None:
    r1 = Prompts(clicks=[(1, 1, True)], texts=["the child"])
    r2 = Prompts(clicks=[(1, 1, True), (4, 4, False)], boxes=[(0, 0, 5, 5)], texts=["the child"])
    merged = r1.merged(r2)
    assert merged.clicks == ((1.0, 1.0, True), (4.0, 4.0, False))
    assert merged.boxes == ((0.0, 0.0, 5.0, 5.0),)
    assert merged.texts == ("the child",)
    assert r2.without(r1) == Prompts(clicks=[(4, 4, False)], boxes=[(0, 0, 5, 5)])


def test_dict_round_trip() -> None:
    p = Prompts(clicks=[(1.5, 2, False)], scribbles=[([(0, 0), (3, 4)], True)], boxes=[(0, 0, 5, 6)], texts=["x"])
    assert Prompts.from_dict(p.to_dict()) == p
