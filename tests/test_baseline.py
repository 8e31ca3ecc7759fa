"""Closed-form matting baseline: the Laplacian itself, the prompt rules, and mattes of known scenes."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.prompts import Prompts
from training.baseline import (
    FAINT,
    HARD,
    SOFT,
    MattingLaplacian,
    classical_matte,
    click_radius,
    prompt_constraints,
)
from training.metrics import sad

FG = np.array([0.9, 0.2, 0.1])
BG = np.array([0.1, 0.3, 0.8])


def _dense_laplacian(img: np.ndarray, eps: float) -> np.ndarray:
    """Levin et al.'s definition, literally: a sum over every full 3x3 window."""
    h, w = img.shape[:2]
    lap = np.zeros((h * w, h * w))
    for cy in range(1, h - 1):
        for cx in range(1, w - 1):
            idx = [y * w + x for y in range(cy - 1, cy + 2) for x in range(cx - 1, cx + 2)]
            colours = img.reshape(-1, 3)[idx]
            d = colours - colours.mean(0)
            inv = np.linalg.inv(d.T @ d / 9 + eps / 9 * np.eye(3))
            lap[np.ix_(idx, idx)] += np.eye(9) - (1 + d @ inv @ d.T) / 9
    return lap


def test_matrix_free_laplacian_equals_the_definition() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((5, 6, 3))
    dense = _dense_laplacian(img, 1e-5)
    lap = MattingLaplacian(img, 1e-5)
    x = rng.random((5, 6))
    np.testing.assert_allclose(lap @ x, (dense @ x.ravel()).reshape(5, 6), atol=1e-9)
    np.testing.assert_allclose(lap.diagonal(), np.diag(dense).reshape(5, 6), atol=1e-9)


def test_colour_line_mattes_are_in_the_null_space() -> None:
    rng = np.random.default_rng(1)
    img = rng.random((12, 10, 3))
    lap = MattingLaplacian(img, 1e-10)
    assert np.abs(lap @ np.ones((12, 10))).max() < 1e-6
    affine = img @ np.array([0.3, -0.2, 0.5]) + 0.1  # alpha = a . I + b costs nothing
    assert np.abs(lap @ affine).max() < 1e-4


def _soft_edge(h: int = 64, w: int = 80) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(w) + 0.5
    gt = np.repeat(np.clip((48 - x) / 12, 0, 1)[None, :], h, 0)
    noise = np.random.default_rng(0).normal(0, 0.01, (h, w, 3))
    img = np.clip(gt[..., None] * FG + (1 - gt[..., None]) * BG + noise, 0, 1)
    return (img * 255).round().astype(np.uint8), gt


def test_soft_edge_recovered_from_scribbles() -> None:
    img, gt = _soft_edge()
    prompts = Prompts(scribbles=[([(10, 5), (10, 60)], True), ([(70, 5), (70, 60)], False)])
    alpha = classical_matte(img, prompts)
    assert alpha.shape == gt.shape and alpha.dtype == np.float32
    trivial = sad(np.full_like(gt, 0.5), gt)
    trimap = prompt_constraints(prompts, 80, 64).trimap() / 255.0
    assert sad(alpha, gt) < 0.05 * trivial
    assert sad(alpha, gt) < 0.05 * sad(trimap, gt)
    assert np.abs(alpha[:, 40] - gt[:, 40]).max() < 0.1  # inside the soft band, not just the flats


def test_soft_edge_from_two_clicks() -> None:
    img, gt = _soft_edge()
    alpha = classical_matte(img, Prompts(clicks=[(10, 30, True), (72, 30, False)]))
    assert sad(alpha, gt) < 0.1 * sad(np.full_like(gt, 0.5), gt)


def test_box_around_a_soft_disc() -> None:
    h, w = 72, 72
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    gt = np.clip((22 - np.hypot(xx - 36, yy - 36)) / 4, 0, 1)  # radius 20 with a 4 px soft rim
    img = (gt[..., None] * FG + (1 - gt[..., None]) * BG).astype(np.float64)
    alpha = classical_matte(img, Prompts(boxes=[(10, 10, 62, 62)]))
    outside = np.ones((h, w), bool)
    outside[10:62, 10:62] = False
    assert alpha[outside].max() < 0.01  # outside the box is known background
    assert sad(alpha, gt) < 0.02 * sad(np.full_like(gt, 0.5), gt)


def test_prompt_rules() -> None:
    w, h = 100, 80
    r = click_radius(w, h)
    assert r == 2
    c = prompt_constraints(Prompts(clicks=[(50.5, 40.5, True), (20.5, 20.5, False)], boxes=[(30, 20, 70, 70)]), w, h)
    assert c.weight[40, 50] == HARD and c.target[40, 50] == 1.0  # fg click
    assert c.weight[40, 50 + r] == HARD and c.weight[40, 50 + r + 2] == SOFT  # disk radius r, then the core
    assert c.weight[20, 20] == HARD and c.target[20, 20] == 0.0  # bg click (outside the box anyway)
    assert c.weight[5, 5] == HARD and c.target[5, 5] == 0.0  # outside the box
    assert c.weight[22, 32] == FAINT  # inside the box, outside the core: unknown
    tri = c.trimap()
    assert tri[40, 50] == 255 and tri[5, 5] == 0 and tri[22, 32] == 128 and tri[45, 60] == 128
    # a background click inside a foreground scribble wins
    c2 = prompt_constraints(Prompts(scribbles=[([(10, 40), (90, 40)], True)], clicks=[(50.5, 40.5, False)]), w, h)
    assert c2.target[40, 50] == 0.0 and c2.target[40, 20] == 1.0
    # text only: soft centre prior and soft border, nothing hard
    c3 = prompt_constraints(Prompts(texts=["the woman on the left"]), w, h)
    assert c3.weight.max() == SOFT and c3.target[40, 50] == 1.0 and c3.target[0, 0] == 0.0
    with pytest.raises(ValueError, match="no inputs"):
        prompt_constraints(Prompts(), w, h)


def test_text_only_is_a_centre_prior() -> None:
    rng = np.random.default_rng(3)
    img = rng.random((48, 64, 3))
    alpha = classical_matte(img, Prompts(texts=["someone"]))
    assert 0.0 <= alpha.min() and alpha.max() <= 1.0
    assert alpha[20:28, 28:36].mean() > alpha[:3].mean() + 0.2


def test_large_images_are_solved_downscaled() -> None:
    img, gt = _soft_edge(96, 120)
    prompts = Prompts(scribbles=[([(10, 5), (10, 90)], True), ([(110, 5), (110, 90)], False)])
    alpha = classical_matte(img, prompts, max_side=60)
    assert alpha.shape == gt.shape
    assert sad(alpha, gt) < 0.1 * sad(np.full_like(gt, 0.5), gt)


def test_bad_images_rejected() -> None:
    p = Prompts(clicks=[(1, 1, True)])
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        classical_matte(np.zeros((8, 8)), p)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        classical_matte(np.full((8, 8, 3), 2.0), p)
    with pytest.raises(ValueError, match="outside"):
        classical_matte(np.zeros((8, 8, 3), np.uint8), Prompts(clicks=[(20, 1, True)]))
