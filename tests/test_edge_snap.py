"""Edge snapping (plugin.edge_snap): a matte whose outline sits off the picture's colour edge
crosses 0.5 on it, a hard matte on a soft edge gets the picture's blend, flat areas and empty
mattes stay as they were, and a large picture filtered at the networks' scale snaps as well."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.edge_snap import guided_filter, snap_to_edges


def _person_on_background(size: int, x_edge: float, soft: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A picture whose left part (x < x_edge) is a reddish person on a bluish background, and
    its true alpha; ``soft`` > 0 blends the two over that many pixels, as a soft outline does."""
    xs = np.arange(size, dtype=np.float32) + 0.5
    if soft > 0:
        alpha_row = np.clip((x_edge - xs) / soft + 0.5, 0.0, 1.0)
    else:
        alpha_row = (xs < x_edge).astype(np.float32)
    alpha = np.tile(alpha_row, (size, 1))
    fg = np.array([200.0, 60.0, 50.0], np.float32)
    bg = np.array([40.0, 90.0, 170.0], np.float32)
    rng = np.random.default_rng(0)
    rgb = alpha[..., None] * fg + (1 - alpha[..., None]) * bg + rng.normal(0, 2.0, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), alpha


def _crossing(alpha_row: np.ndarray) -> float:
    """x where a falling row crosses 0.5 (linear between pixel centres)."""
    i = int(np.nonzero(alpha_row < 0.5)[0][0])
    a0, a1 = alpha_row[i - 1], alpha_row[i]
    return (i - 1) + 0.5 + (a0 - 0.5) / (a0 - a1)


def _ramp(size: int, centre: float, width: float) -> np.ndarray:
    """A matte falling from 1 to 0 over ``width`` pixels around x = ``centre``: a rounder outline."""
    return np.tile(np.clip((centre - (np.arange(size) + 0.5)) / width + 0.5, 0, 1), (size, 1)).astype(np.float32)


@pytest.mark.parametrize("centre", [45.0, 50.0, 51.0])
def test_an_outline_off_the_edge_crosses_half_on_it(centre: float) -> None:
    """The 0.5 crossing, where IoU and the user's eye put the outline, moves onto the colour
    edge from three pixels either side; the blur's mass stays as a faint tail (SAD level)."""
    rgb, truth = _person_on_background(96, x_edge=48)
    rounder = _ramp(96, centre, 4)
    snapped = snap_to_edges(rounder, rgb, view_scale=1.0)
    assert abs(_crossing(rounder[40]) - centre) < 0.1
    assert abs(_crossing(snapped[40]) - 48) < 0.6
    assert snapped[:, 40:47].min() > 0.5 and snapped[:, 49:56].max() < 0.5  # the whole outline
    assert np.abs(snapped - truth).sum() < 1.05 * np.abs(rounder - truth).sum()


def test_a_soft_edge_gets_the_pictures_blend() -> None:
    rgb, truth = _person_on_background(96, x_edge=48, soft=6)
    hard = (truth > 0.5).astype(np.float32)
    snapped = snap_to_edges(hard, rgb, view_scale=1.0)
    row = snapped[50, 40:57]
    assert np.all(np.diff(row) <= 1e-3)  # a falling ramp
    assert ((row > 0.1) & (row < 0.9)).sum() >= 4  # as wide as the picture's blend
    assert np.abs(snapped - truth).sum() < 0.3 * np.abs(hard - truth).sum()


def test_flat_regions_and_empty_mattes_stay_as_they_were() -> None:
    rgb, truth = _person_on_background(96, x_edge=48)
    snapped = snap_to_edges(truth, rgb, view_scale=1.0)
    assert np.abs(snapped[:, :30] - 1.0).max() < 1e-3 and np.abs(snapped[:, 66:]).max() < 1e-3
    assert np.array_equal(snap_to_edges(np.zeros((96, 96), np.float32), rgb, 1.0), np.zeros((96, 96)))
    small = np.zeros((96, 96), np.float32)
    small[10:20, 10:20] = 1.0  # far from the rest of the picture: only its neighbourhood is filtered
    out = snap_to_edges(small, rgb, 1.0)
    assert out[60:, 60:].max() == 0.0 and 0.0 <= out.min() and out.max() <= 1.0


def test_a_large_picture_is_filtered_at_the_networks_scale() -> None:
    rgb, truth = _person_on_background(1024, x_edge=500)
    rounder = _ramp(1024, 506, 12)  # six pixels out, blurred as an upsampled matte is
    snapped = snap_to_edges(rounder, rgb, view_scale=1024 / 384)
    assert abs(_crossing(snapped[512]) - 500) < 2.0
    assert snapped[:, 480:497].min() > 0.8 and snapped[:, 503:520].max() < 0.5


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="same pixels"):
        snap_to_edges(np.zeros((10, 12), np.float32), np.zeros((10, 10, 3), np.uint8), 1.0)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        guided_filter(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.float32), 2)


def test_the_filter_is_the_guided_filter() -> None:
    """Against He et al.'s definition computed directly: per window, the ridge regression of p on
    the colour (np.linalg.solve), its coefficients averaged over the windows holding each pixel."""
    import cv2

    rng = np.random.default_rng(3)
    guide = rng.random((24, 30, 3)).astype(np.float32)
    p = rng.random((24, 30)).astype(np.float32)
    r, eps = 2, 1e-3

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)

    mean_i = np.stack([box(guide[..., c]) for c in range(3)], -1)
    cov = np.stack([box(guide[..., c] * p) for c in range(3)], -1) - mean_i * box(p)[..., None]
    sigma = np.stack([np.stack([box(guide[..., i] * guide[..., j]) - mean_i[..., i] * mean_i[..., j]
                                for j in range(3)], -1) for i in range(3)], -2) + eps * np.eye(3)
    a = np.linalg.solve(sigma, cov[..., None])[..., 0]
    b = box(p) - (a * mean_i).sum(-1)
    want = (np.stack([box(a[..., c].astype(np.float32)) for c in range(3)], -1) * guide).sum(-1) + box(b.astype(np.float32))
    assert np.abs(guided_filter(guide, p, r, eps) - want).max() < 1e-4


@pytest.mark.parametrize("scale", [1.0, 1.5, 2.0])
def test_a_grey_edge_gives_a_finite_matte(scale: float) -> None:
    """Where the three channels change together the colour covariance is nearly singular (its
    cofactors cancelled to det 0 in float32 on a validation picture): the matte stays finite."""
    rgb = np.full((96, 96, 3), 210, np.uint8)
    rgb[:, 48:] = 14
    rgb[30:60, 20:40] = (180, 180, 180)
    alpha = _ramp(96, 50, 4)
    for radius in (2, 6, 8):
        out = snap_to_edges(alpha, rgb, scale, radius=radius)
        assert np.isfinite(out).all() and 0.0 <= out.min() and out.max() <= 1.0
        assert 47.0 < _crossing(out[10]) <= _crossing(alpha[10]) + 0.01  # never further out
