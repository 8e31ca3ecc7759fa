"""Matting and segmentation metrics: SAD, MSE, GRAD, CONN, IoU and NoC.

The paper (Table 3) reports the four matting errors of Deep Image Matting (Xu et al., CVPR 2017)
as every matting paper since does, so numbers from this module are comparable with published ones
only if they follow that reference code exactly. Every function takes ``pred`` and ``gt`` as float
arrays of shape (H, W) in [0, 1] and an optional boolean ``region`` (True = counted; None = whole
image). Use ``unknown_region(trimap)`` to evaluate only a trimap's unknown band, as the
trimap-based papers do. Units and scalings are written out in docs/metrics.md.

Only numpy and OpenCV are used (no scipy): Gaussian filtering is ``cv2.filter2D`` with replicated
borders (scipy.ndimage's ``mode="nearest"``) and connected components are
``cv2.connectedComponents`` with 4-connectivity (MATLAB ``bwconncomp(..., 4)`` in the reference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

#: Divisor of SAD, GRAD and CONN: the reference code reports them in thousands.
THOUSAND = 1000.0
#: Table 3 of the paper prints MSE multiplied by this; ``mse(..., scale=MSE_TABLE_SCALE)``.
MSE_TABLE_SCALE = 1e2
#: Sigma of the Gaussian derivative filters of GRAD (reference value).
GRAD_SIGMA = 1.4
#: Threshold step of CONN (reference value).
CONN_STEP = 0.1
#: CONN ignores distances below this (reference value theta = 0.15).
CONN_THETA = 0.15

_TOL = 1e-6


def _check(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate inputs once, here, so every metric fails with the same clear message."""
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim != 2 or g.ndim != 2:
        raise ValueError(f"pred and gt must be (H, W) mattes, got shapes {p.shape} and {g.shape}")
    if p.shape != g.shape:
        raise ValueError(f"pred shape {p.shape} differs from gt shape {g.shape}")
    for what, a in (("pred", p), ("gt", g)):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{what} holds NaN or infinite values")
        if a.size and (a.min() < -_TOL or a.max() > 1.0 + _TOL):
            raise ValueError(
                f"{what} must be in [0, 1], got [{a.min():g}, {a.max():g}] (divide 8-bit mattes by 255)"
            )
    if region is None:
        r = np.ones(p.shape, dtype=bool)
    else:
        r = np.asarray(region)
        if r.dtype != np.bool_:
            raise TypeError(
                f"region must be a boolean mask, got dtype {r.dtype}; use unknown_region(trimap) for a trimap"
            )
        if r.shape != p.shape:
            raise ValueError(f"region shape {r.shape} differs from matte shape {p.shape}")
    return np.clip(p, 0.0, 1.0), np.clip(g, 0.0, 1.0), r


def unknown_region(trimap: np.ndarray) -> np.ndarray:
    """Boolean mask of a trimap's unknown band: 128 for uint8 trimaps, 0.5 for float ones."""
    t = np.asarray(trimap)
    if t.ndim != 2:
        raise ValueError(f"trimap must be (H, W), got shape {t.shape}")
    if np.issubdtype(t.dtype, np.integer):
        return t == 128
    return np.isclose(t.astype(np.float64), 0.5)


def sad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> float:
    """Sum of absolute differences over the region, divided by 1000."""
    p, g, r = _check(pred, gt, region)
    return float(np.abs(p - g)[r].sum() / THOUSAND)


def mse(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, scale: float = 1.0) -> float:
    """Mean squared difference over the region's pixels, times ``scale``.

    ``scale=1`` is the plain mean (what the reference code returns); the paper's tables print it
    with ``scale=MSE_TABLE_SCALE`` (x 1e2). An empty region gives 0."""
    p, g, r = _check(pred, gt, region)
    n = int(r.sum())
    if n == 0:
        return 0.0
    return float(((p - g) ** 2)[r].sum() / n * scale)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return np.exp(-(x**2) / (2 * sigma**2)) / (sigma * math.sqrt(2 * math.pi))


def gaussian_derivative_kernel(sigma: float = GRAD_SIGMA) -> np.ndarray:
    """The reference x-derivative kernel: G(y) * dG/dx(x), truncated where G falls below 1%
    of its peak and scaled to unit L2 norm (this normalisation is what the reference does)."""
    epsilon = 1e-2
    half = int(math.ceil(sigma * math.sqrt(-2 * math.log(math.sqrt(2 * math.pi) * sigma * epsilon))))
    u = np.arange(-half, half + 1, dtype=np.float64)
    g = _gauss(u, sigma)
    dg = -u * g / sigma**2
    hx = np.outer(g, dg)  # rows vary y (smoothing), columns vary x (derivative)
    return hx / np.sqrt(np.sum(hx * hx))


def gradient_magnitude(alpha: np.ndarray, sigma: float = GRAD_SIGMA) -> np.ndarray:
    """|grad alpha| from the Gaussian derivative filters, replicated borders."""
    hx = gaussian_derivative_kernel(sigma)
    a = np.asarray(alpha, dtype=np.float64)
    gx = cv2.filter2D(a, cv2.CV_64F, hx, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.filter2D(a, cv2.CV_64F, np.ascontiguousarray(hx.T), borderType=cv2.BORDER_REPLICATE)
    return np.sqrt(gx**2 + gy**2)


def grad(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, sigma: float = GRAD_SIGMA) -> float:
    """Gradient error: sum over the region of (|grad pred| - |grad gt|)^2, divided by 1000.

    The mattes are used in [0, 1] (the reference divides 8-bit mattes by 255 first); kernels are
    the unit-norm Gaussian derivatives of ``gaussian_derivative_kernel``. Filtering is done on the
    whole image, then the region selects which pixels are summed."""
    p, g, r = _check(pred, gt, region)
    err = (gradient_magnitude(p, sigma) - gradient_magnitude(g, sigma)) ** 2
    return float(err[r].sum() / THOUSAND)


def largest_component(mask: np.ndarray, count_background: bool = False) -> np.ndarray:
    """The largest 4-connected component of a boolean mask (all False when the mask is empty).

    ``count_background=True`` lets the background (label 0) compete too, as the common Python
    port's ``getLargestCC`` does by accident; only for reproducing numbers made with it."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    n, labels = cv2.connectedComponents(m, connectivity=4)
    counts = np.bincount(labels.ravel(), minlength=n)
    if not count_background:
        if n <= 1:
            return np.zeros(m.shape, dtype=bool)
        counts[0] = 0  # label 0 is the background
    return labels == int(np.argmax(counts))


def conn(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, step: float = CONN_STEP,
         legacy_background: bool = False) -> float:
    """Connectivity error (Rhemann et al. 2009, as coded by Deep Image Matting), divided by 1000.

    For thresholds t_k = k * step (k = 1 .. 1/step), a pixel's level l is the last threshold
    t_{k-1} at which it still belonged to the largest 4-connected component of
    (pred >= t_k) & (gt >= t_k); pixels never dropped get l = 1. With d = alpha - l,
    phi = 1 - d * (d >= 0.15), and the error is sum over the region of |phi_pred - phi_gt|.
    ``legacy_background=True`` reproduces the widespread Python port that lets the background
    win as "largest component" (docs/metrics.md); the default follows the MATLAB original."""
    p, g, r = _check(pred, gt, region)
    n_steps = int(round(1.0 / step))
    level = np.full(p.shape, -1.0)
    for k in range(1, n_steps + 1):
        t = k * step
        omega = largest_component((p >= t) & (g >= t), count_background=legacy_background)
        level[(level == -1.0) & ~omega] = (k - 1) * step
    level[level == -1.0] = 1.0
    dp = p - level
    dg = g - level
    phi_p = 1.0 - dp * (dp >= CONN_THETA)
    phi_g = 1.0 - dg * (dg >= CONN_THETA)
    return float(np.abs(phi_p - phi_g)[r].sum() / THOUSAND)


def iou(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None, threshold: float = 0.5) -> float:
    """Intersection over union of ``pred >= threshold`` and ``gt >= threshold`` inside the region.

    Two empty masks agree perfectly, so their IoU is 1."""
    p, g, r = _check(pred, gt, region)
    pm = (p >= threshold) & r
    gm = (g >= threshold) & r
    union = int((pm | gm).sum())
    if union == 0:
        return 1.0
    return float((pm & gm).sum() / union)


def noc(ious_per_interaction: Sequence[float], threshold: float = 0.9, max_clicks: int = 20) -> int:
    """Number of interactions needed to reach ``threshold`` IoU (NoC@threshold).

    ``ious_per_interaction[k]`` is the IoU after interaction k + 1. Only the first ``max_clicks``
    count; a target never reached within them scores ``max_clicks`` (the usual cap of 20)."""
    if max_clicks < 1:
        raise ValueError(f"max_clicks must be at least 1, got {max_clicks}")
    for k, value in enumerate(list(ious_per_interaction)[:max_clicks]):
        if not math.isfinite(float(value)):
            raise ValueError(f"IoU after interaction {k + 1} is not a finite number: {value}")
        if float(value) >= threshold:
            return k + 1
    return max_clicks


def all_metrics(pred: np.ndarray, gt: np.ndarray, region: np.ndarray | None = None) -> dict[str, float]:
    """The Table 3 columns (MSE unscaled) plus IoU, in one call, for evaluation scripts."""
    return {
        "sad": sad(pred, gt, region),
        "mse": mse(pred, gt, region),
        "grad": grad(pred, gt, region),
        "conn": conn(pred, gt, region),
        "iou": iou(pred, gt, region),
    }
