"""Metrics against values worked out by hand on tiny mattes (see the comments for each sum)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.metrics import (
    MSE_TABLE_SCALE,
    all_metrics,
    conn,
    grad,
    gradient_magnitude,
    iou,
    mse,
    noc,
    sad,
    unknown_region,
)


def test_sad_and_mse_by_hand() -> None:
    gt = np.array([[1.0, 0.5], [0.0, 0.25]])
    pred = np.array([[0.5, 0.5], [0.25, 0.25]])
    # |diff| = 0.5 + 0 + 0.25 + 0 = 0.75 -> / 1000
    assert sad(pred, gt) == pytest.approx(0.75e-3)
    # diff^2 = 0.25 + 0.0625 = 0.3125 over 4 pixels
    assert mse(pred, gt) == pytest.approx(0.078125)
    assert mse(pred, gt, scale=MSE_TABLE_SCALE) == pytest.approx(7.8125)


def test_region_restricts_every_metric() -> None:
    gt = np.array([[1.0, 0.5], [0.0, 0.25]])
    pred = np.array([[0.5, 0.5], [0.25, 0.25]])
    region = np.array([[False, True], [True, True]])
    assert sad(pred, gt, region) == pytest.approx(0.25e-3)
    assert mse(pred, gt, region) == pytest.approx(0.0625 / 3)
    trimap = np.array([[255, 128], [0, 128]], dtype=np.uint8)
    unk = unknown_region(trimap)
    assert unk.tolist() == [[False, True], [False, True]]
    assert sad(pred, gt, unk) == 0.0
    assert unknown_region(np.array([[0.5, 1.0]])).tolist() == [[True, False]]


def test_iou_by_hand() -> None:
    gt = np.array([[1.0, 1.0, 0.0, 0.0]])
    pred = np.array([[0.9, 0.2, 0.6, 0.0]])
    # pred mask {0, 2}, gt mask {0, 1}: intersection 1, union 3
    assert iou(pred, gt) == pytest.approx(1 / 3)
    assert iou(np.zeros((2, 2)), np.zeros((2, 2))) == 1.0
    assert iou(pred, gt, np.array([[True, False, False, False]])) == 1.0


def test_conn_shifted_edge_by_hand() -> None:
    gt = np.array([[1.0, 1.0, 0.0, 0.0]])
    pred = np.array([[1.0, 0.0, 0.0, 0.0]])
    # Largest component of the intersection is pixel 0 at every threshold -> its level is 1;
    # the others drop at t=0.1 -> level 0. d_gt = [0, 1, 0, 0] -> phi_gt = [1, 0, 1, 1];
    # d_pred = 0 everywhere -> phi_pred = 1. Error 1 / 1000.
    assert conn(pred, gt) == pytest.approx(1e-3)


def test_conn_legacy_background_mode_by_hand() -> None:
    gt = np.array([[1.0, 1.0, 0.0, 0.0]])
    pred = np.array([[1.0, 0.0, 0.0, 0.0]])
    # The port's getLargestCC counts label 0: the background {1, 2, 3} (3 px) beats {0} (1 px),
    # so omega = {1, 2, 3}: pixel 0 drops at t=0.1 (level 0), the rest keep level 1.
    # d_pred = [1, -1, -1, -1] -> phi_pred = [0, 1, 1, 1]; d_gt = [1, 0, -1, -1] -> phi_gt the same.
    assert conn(pred, gt, legacy_background=True) == 0.0
    assert conn(pred, gt) == pytest.approx(1e-3)


def test_conn_soft_break_by_hand() -> None:
    gt = np.ones((1, 4))
    pred = np.array([[1.0, 0.35, 1.0, 1.0]])
    # At t=0.4 the intersection splits into {0} and {2, 3}; the largest is {2, 3}.
    # Levels: pixels 0 and 1 -> 0.3, pixels 2 and 3 -> 1.
    # d_pred = [0.7, 0.05, 0, 0] -> phi_pred = [0.3, 1, 1, 1]
    # d_gt   = [0.7, 0.7, 0, 0]  -> phi_gt   = [0.3, 0.3, 1, 1]; error 0.7 / 1000
    assert conn(pred, gt) == pytest.approx(0.7e-3)
    assert sad(pred, gt) == pytest.approx(0.65e-3)


def test_grad_of_a_ramp_matches_the_continuous_gaussian_derivative() -> None:
    # For alpha = s * x, a unit-L2-norm kernel G(y) G'(x) answers s * 2 sqrt(2 pi) sigma^2 in the
    # continuous limit (sum G = 1, sum x^2 G = sigma^2, norms from the Gaussian integrals).
    sigma, s = 1.4, 1 / 40
    ramp = np.tile(np.arange(32) * s, (16, 1))
    expected_mag = s * 2 * math.sqrt(2 * math.pi) * sigma**2
    interior = np.zeros(ramp.shape, dtype=bool)
    interior[5:-5, 5:-5] = True
    assert gradient_magnitude(ramp)[interior] == pytest.approx(expected_mag, rel=0.03)
    flat = np.full(ramp.shape, 0.3)
    expected = interior.sum() * expected_mag**2 / 1000
    assert grad(ramp, flat, interior) == pytest.approx(expected, rel=0.06)
    assert grad(ramp, ramp) == 0.0


def test_grad_and_conn_rank_differently_from_sad() -> None:
    gt = np.zeros((32, 32))
    gt[:, :16] = 1.0
    shifted = np.zeros_like(gt)
    shifted[:, :15] = 1.0  # edge one pixel off: 32 wrong pixels
    lifted = np.where(gt == 1.0, 1.0, 0.08)  # right edge place, background a little grey
    # SAD: 32 / 1000 vs 0.08 * 512 / 1000 = 0.04096 -> SAD prefers the shifted edge ...
    assert sad(shifted, gt) == pytest.approx(0.032)
    assert sad(lifted, gt) == pytest.approx(0.04096)
    assert sad(shifted, gt) < sad(lifted, gt)
    # ... CONN: the grey 0.08 is below theta=0.15 so it costs nothing; each shifted pixel costs 1.
    assert conn(lifted, gt) == 0.0
    assert conn(shifted, gt) == pytest.approx(0.032)
    # ... GRAD: a 0.92 step differs from a 1.0 step by 8% in gradient; a shifted edge misplaces it.
    assert grad(lifted, gt) < grad(shifted, gt) / 10


def test_noc() -> None:
    assert noc([0.5, 0.85, 0.91, 0.95]) == 3
    assert noc([0.95]) == 1
    assert noc([0.5] * 30) == 20
    assert noc([]) == 20
    assert noc([0.5, 0.86], threshold=0.85) == 2
    assert noc([0.5] * 25 + [0.99], max_clicks=20) == 20  # reached too late
    assert noc([0.1, 0.2, 0.3], max_clicks=2) == 2
    with pytest.raises(ValueError, match="max_clicks"):
        noc([0.9], max_clicks=0)
    with pytest.raises(ValueError, match="interaction 2"):
        noc([0.1, float("nan")])


def test_bad_input_is_named() -> None:
    a = np.zeros((4, 4))
    with pytest.raises(ValueError, match="shape"):
        sad(a, np.zeros((4, 5)))
    with pytest.raises(ValueError, match=r"pred must be in \[0, 1\]"):
        sad(a + 255, a)
    with pytest.raises(ValueError, match="NaN"):
        mse(a, a * np.nan)
    with pytest.raises(TypeError, match="unknown_region"):
        grad(a, a, np.full((4, 4), 128, dtype=np.uint8))
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        conn(np.zeros((4, 4, 1)), np.zeros((4, 4, 1)))


def test_all_metrics_zero_for_a_perfect_prediction() -> None:
    rng = np.random.default_rng(0)
    gt = rng.random((24, 24))
    result = all_metrics(gt, gt)
    assert result == {"sad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "iou": 1.0}
