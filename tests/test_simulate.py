"""The simulated user (training/simulate.py): deterministic, and each of the paper's 5.2 rules."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from plugin.prompts import Prompts
from training.simulate import (
    UserSimulator,
    axis_stroke,
    deepest_point,
    describe,
    distance_inside,
    most_significant_error,
)

H = W = 96


def ellipse(cx: int, cy: int, ax: int, ay: int) -> np.ndarray:
    a = np.zeros((H, W), np.float32)
    cv2.ellipse(a, (cx, cy), (ax, ay), 0, 0, 360, 1.0, -1)
    return a


@pytest.fixture()
def scene() -> tuple[np.ndarray, np.ndarray]:
    """Target on the left, a neighbour on the right."""
    return ellipse(35, 50, 14, 30), ellipse(72, 45, 12, 25)


def inside(mask: np.ndarray, x: float, y: float) -> bool:
    return bool(mask[int(np.floor(y)), int(np.floor(x))])


@pytest.mark.parametrize("mode", ["click", "scribble", "box", "text", "mix"])
def test_same_seed_same_inputs_and_other_seed_differs(mode: str, scene) -> None:
    gt, other = scene
    a = UserSimulator(mode, 5).first_round(gt, None, [other])
    b = UserSimulator(mode, 5).first_round(gt.copy(), None, [other.copy()])
    assert a == b
    if mode in ("click", "box"):
        others = {UserSimulator(mode, s).first_round(gt, None, [other]) for s in range(6)}
        assert len(others) > 1, "the seed must change the round-1 inputs"
    if mode != "text" and UserSimulator(mode, 5).rounds > 1:
        pred = ellipse(35, 40, 14, 20)
        assert UserSimulator(mode, 5).next_round(gt, pred, 2) == UserSimulator(mode, 5).next_round(gt, pred, 2)


def test_round_counts_per_mode(scene) -> None:
    gt, other = scene
    assert UserSimulator("click").rounds == UserSimulator("scribble").rounds == UserSimulator("mix").rounds == 5
    assert UserSimulator("box").rounds == UserSimulator("text").rounds == 1
    c = UserSimulator("click", 1).first_round(gt, None, [other])
    assert len(c.clicks) == 3 and c.num_visual == 3 and not c.texts
    s = UserSimulator("scribble", 1).first_round(gt, None, [other])
    assert len(s.scribbles) == 2 and s.num_visual == 2
    b = UserSimulator("box", 1).first_round(gt, None, [other])
    assert len(b.boxes) == 1 and b.num_visual == 1
    t = UserSimulator("text", 1).first_round(gt, "the woman in red", [other])
    assert t.texts == ("the woman in red",) and t.num_visual == 0
    pred = np.zeros_like(gt)  # everything missed: plenty of error to correct
    pred[60:90, 5:20] = 1.0
    assert len(UserSimulator("click", 1).next_round(gt, pred, 2).clicks) == 3
    assert len(UserSimulator("scribble", 1).next_round(gt, pred, 2).scribbles) == 2
    with pytest.raises(ValueError, match="single round"):
        UserSimulator("box").next_round(gt, pred, 2)


def test_round_one_clicks_fg_in_target_core_bg_on_neighbour(scene) -> None:
    gt, other = scene
    for seed in range(5):
        p = UserSimulator("click", seed).first_round(gt, None, [other])
        fg = [(x, y) for x, y, f in p.clicks if f]
        bg = [(x, y) for x, y, f in p.clicks if not f]
        assert len(fg) == 2 and len(bg) == 1
        dist = distance_inside(gt > 0.5)
        for x, y in fg:
            assert dist[int(y), int(x)] >= 2.0, "foreground clicks keep away from the target's edge"
        assert inside(other > 0.5, *bg[0]), "the background click marks the neighbouring person"
    alone = UserSimulator("click", 0).first_round(gt)
    bg = [(x, y) for x, y, f in alone.clicks if not f]
    assert len(bg) == 1 and gt[int(bg[0][1]), int(bg[0][0])] == 0.0, "no neighbour: background next to the target"


def test_box_bounds_target_with_small_jitter(scene) -> None:
    gt, other = scene
    ys, xs = np.nonzero(gt > 0.5)
    for seed in range(4):
        (x0, y0, x1, y1), = UserSimulator("box", seed).first_round(gt, None, [other]).boxes
        tol_x, tol_y = 0.031 * (xs.max() + 1 - xs.min()), 0.031 * (ys.max() + 1 - ys.min())
        assert abs(x0 - xs.min()) <= tol_x and abs(x1 - (xs.max() + 1)) <= tol_x
        assert abs(y0 - ys.min()) <= tol_y and abs(y1 - (ys.max() + 1)) <= tol_y


def test_text_fallback_describes_position_and_size(scene) -> None:
    gt = ellipse(18, 50, 10, 30)
    assert "left" in describe(gt)
    assert "right" in describe(ellipse(80, 50, 6, 8)) and "small" in describe(ellipse(80, 50, 6, 8))
    assert UserSimulator("text").first_round(gt, None).texts == (describe(gt),)
    assert UserSimulator("text").first_round(gt, "  ").texts == (describe(gt),)


def test_mix_round_one_is_text_plus_one_visual_type(scene) -> None:
    gt, other = scene
    kinds = set()
    for seed in range(12):
        p = UserSimulator("mix", seed).first_round(gt, "the man", [other])
        assert p.texts == ("the man",)
        present = [k for k, v in (("click", p.clicks), ("scribble", p.scribbles), ("box", p.boxes)) if v]
        assert len(present) == 1
        kinds.add(present[0])
        for r in range(2, 6):
            assert UserSimulator("mix", seed).round_kind(gt, r) in ("click", "scribble")
    assert kinds == {"click", "scribble", "box"}, "the seed picks every visual type"


def test_miss_gives_foreground_click_at_the_deepest_error_point() -> None:
    gt = np.zeros((H, W), np.float32)
    gt[20:80, 20:60] = 1.0
    pred = gt.copy()
    pred[20:50, 20:60] = 0.0  # the top half missed (30 x 40 region)
    pred[85:90, 85:90] = 1.0  # a small false positive elsewhere
    region = most_significant_error(gt, pred)
    assert region is not None and region.foreground
    new = UserSimulator("click", 0, per_round=1).next_round(gt, pred, 2)
    (x, y, fg), = new.clicks
    assert fg and 20 <= y < 50 and 20 <= x < 60
    assert abs(y - 35) <= 2 and abs(x - 40) <= 2, "the point farthest from the region's boundary"


def test_false_positive_gives_background_inputs_inside_it() -> None:
    gt = np.zeros((H, W), np.float32)
    gt[20:80, 20:45] = 1.0
    pred = gt.copy()
    pred[10:90, 55:85] = 1.0  # a large false positive
    for mode in ("click", "scribble"):
        new = UserSimulator(mode, 3).next_round(gt, pred, 2)
        inputs = [([(x, y)], f) for x, y, f in new.clicks] + list(new.scribbles)
        assert inputs
        for pts, fg in inputs:
            assert not fg
            for x, y in pts:
                assert inside(pred > 0.5, x, y) and not inside(gt > 0.5, x, y)


def test_scribble_runs_along_the_region_axis_inside_it() -> None:
    mask = np.zeros((H, W), bool)
    mask[40:50, 10:86] = True  # a long horizontal bar
    pts = axis_stroke(mask)
    xs = [p[0] for p in pts]
    ys = [p[1] for p in pts]
    assert max(xs) - min(xs) > 40 and max(ys) - min(ys) < 2, "along the long axis"
    assert all(inside(mask, x, y) for x, y in pts)
    x, y = deepest_point(mask)
    assert inside(mask, x, y) and 40 <= y <= 50


def test_thin_boundary_slivers_lose_to_a_compact_error() -> None:
    gt = np.zeros((H, W), np.float32)
    gt[10:90, 10:50] = 1.0
    pred = gt.copy()
    pred[10:90, 10] = 0.0  # an 80-pixel sliver along the edge
    pred[60:66, 30:36] = 0.0  # a 36-pixel compact hole
    region = most_significant_error(gt, pred)
    assert region is not None and region.foreground
    ys, xs = np.nonzero(region.mask)
    assert ys.min() >= 60 and xs.min() >= 30, "erosion removes the sliver before sizes are compared"


def test_perfect_prediction_gives_no_inputs(scene) -> None:
    gt, _ = scene
    assert UserSimulator("click").next_round(gt, gt, 2) == Prompts()
    assert most_significant_error(gt, gt) is None


def test_clear_errors() -> None:
    gt = ellipse(40, 40, 10, 10)
    with pytest.raises(ValueError, match="unknown input mode"):
        UserSimulator("lasso")
    with pytest.raises(ValueError, match="alpha > 0.5"):
        UserSimulator("click").first_round(np.zeros((H, W), np.float32))
    with pytest.raises(ValueError, match="pred shape"):
        UserSimulator("click").next_round(gt, np.zeros((10, 10), np.float32), 2)
    with pytest.raises(ValueError, match="rounds 2 and later"):
        UserSimulator("click").next_round(gt, gt, 1)
    with pytest.raises(ValueError, match="2-D"):
        UserSimulator("click").first_round(np.zeros((H, W, 3), np.float32))
