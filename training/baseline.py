"""A classical, non-learned baseline: prompts -> trimap -> closed-form matting (Levin et al. 2008).

Benchmarks need a floor that any learned model must beat; closed-form matting is the standard one.
The user's inputs become constraints (``prompt_constraints``), then the matte minimises
alpha^T L alpha + sum_i w_i (alpha_i - t_i)^2 with L the matting Laplacian (3x3 windows, colour
line model). scipy is not a dependency, so L is never built: ``L @ x`` is computed from box
filters of window statistics (as in He et al. 2010), and the system is solved with
Jacobi-preconditioned conjugate gradients in numpy, coarse to fine. Images larger than
``max_side`` are solved downscaled and the matte is upsampled.

How prompts become constraints (w = weight, t = target):

- foreground clicks: disks of radius ``click_radius`` px, hard foreground (w = HARD, t = 1);
  background clicks the same with t = 0; scribbles likewise along the stroke (width 2r + 1);
- boxes: everything outside all boxes is hard background; an ellipse in the middle of each box
  (half its width, 70% of its height) gets a soft foreground prior (w = SOFT): people usually
  fill the centre of their box, but not always, so the image decides there;
- every pixel left unconstrained gets a tiny background prior (w = FAINT) so the system always has
  a unique solution (a matte of only foreground clicks otherwise drifts to 1 everywhere);
- text only (the classical baseline cannot read): a soft foreground prior on a central ellipse and
  a soft background prior on a 5% border band, i.e. "the person is in the middle". This is a
  centre prior, not understanding; expect poor scores in multi-person images.

Clicks and scribbles are applied after boxes, background last, so a background click inside a box
wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from plugin.prompts import Prompts

HARD = 100.0
SOFT = 0.05
FAINT = 1e-4
EPS = 1e-5
_COARSEST = 64


@dataclass
class Constraints:
    """Per-pixel targets and how strongly they hold (0 = unknown)."""

    target: np.ndarray  # (H, W) float32, 1 = foreground, 0 = background
    weight: np.ndarray  # (H, W) float32, HARD / SOFT / FAINT / 0

    def trimap(self) -> np.ndarray:
        """uint8 trimap for display and metrics: 255 known fg, 0 known bg, 128 the rest."""
        out = np.full(self.target.shape, 128, np.uint8)
        hard = self.weight >= HARD
        out[hard & (self.target >= 0.5)] = 255
        out[hard & (self.target < 0.5)] = 0
        return out


def click_radius(width: int, height: int) -> int:
    """Disk radius of a click: about 1% of the long side, at least 2 px."""
    return max(2, int(round(0.01 * max(width, height))))


def prompt_constraints(prompts: Prompts, width: int, height: int) -> Constraints:
    """The user's inputs as matting constraints (rules in the module docstring)."""
    prompts.validate(width, height)
    target = np.zeros((height, width), np.float32)
    weight = np.zeros((height, width), np.float32)
    r = click_radius(width, height)
    shift = 4

    def pt(x: float, y: float) -> tuple[int, int]:
        # pixel centres are at +0.5 in prompt coordinates
        return int(round((x - 0.5) * 16)), int(round((y - 0.5) * 16))

    if prompts.boxes:
        inside = np.zeros((height, width), np.uint8)
        core = np.zeros((height, width), np.uint8)
        for x0, y0, x1, y1 in prompts.boxes:
            cv2.rectangle(inside, (int(np.floor(x0)), int(np.floor(y0))), (int(np.ceil(x1)) - 1, int(np.ceil(y1)) - 1),
                          1, -1)
            centre = pt((x0 + x1) / 2, (y0 + y1) / 2)
            axes = (int(round((x1 - x0) * 0.25 * 16)), int(round((y1 - y0) * 0.35 * 16)))
            cv2.ellipse(core, centre, axes, 0, 0, 360, 1, -1, cv2.LINE_8, shift)
        weight[inside == 0] = HARD
        target[core == 1] = 1.0
        weight[core == 1] = SOFT
    elif prompts.num_visual == 0:  # text only: a centre prior
        core = np.zeros((height, width), np.uint8)
        cv2.ellipse(core, pt(width / 2, height / 2), (int(width * 0.2 * 16), int(height * 0.35 * 16)), 0, 0, 360,
                    1, -1, cv2.LINE_8, shift)
        band = max(1, int(round(0.05 * min(width, height))))
        border = np.ones((height, width), bool)
        border[band:-band, band:-band] = False
        target[core == 1] = 1.0
        weight[core == 1] = SOFT
        weight[border] = SOFT
    for want_fg in (True, False):  # background last: it wins where both were drawn
        m = np.zeros((height, width), np.uint8)
        for x, y, fg in prompts.clicks:
            if fg == want_fg:
                cv2.circle(m, pt(x, y), r * 16, 1, -1, cv2.LINE_8, shift)
        for pts, fg in prompts.scribbles:
            if fg == want_fg:
                poly = np.array([pt(x, y) for x, y in pts], np.int32)
                if len(poly) == 1:
                    cv2.circle(m, tuple(int(v) for v in poly[0]), r * 16, 1, -1, cv2.LINE_8, shift)
                else:
                    cv2.polylines(m, [poly], False, 1, 2 * r + 1, cv2.LINE_8, shift)
        target[m == 1] = 1.0 if want_fg else 0.0
        weight[m == 1] = HARD
    weight[weight == 0] = FAINT  # target is already 0 there
    return Constraints(target, weight)


def _box_sum(a: np.ndarray) -> np.ndarray:
    """Sum over the 3x3 neighbourhood (zero outside the image), channel-wise."""
    return cv2.boxFilter(a, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)


class MattingLaplacian:
    """Levin et al.'s matting Laplacian of one image, applied without building the matrix."""

    def __init__(self, image: np.ndarray, eps: float = EPS):
        img = np.ascontiguousarray(image, dtype=np.float64)
        h, w = img.shape[:2]
        self.image = img
        valid = np.zeros((h, w), np.float64)
        valid[1:-1, 1:-1] = 1.0  # windows must lie fully inside the image
        self.valid = valid
        mean = cv2.blur(img, (3, 3), borderType=cv2.BORDER_REFLECT)
        cov = np.empty((h, w, 3, 3))
        for i in range(3):
            for j in range(i, 3):
                c = cv2.blur(img[..., i] * img[..., j], (3, 3), borderType=cv2.BORDER_REFLECT) - mean[..., i] * mean[..., j]
                cov[..., i, j] = cov[..., j, i] = c
        cov += (eps / 9.0) * np.eye(3)
        self.mean = mean
        self.inv = np.linalg.inv(cov)  # (h, w, 3, 3)
        self.count = _box_sum(valid)  # windows containing each pixel
        self._diag = self._diagonal()

    def _diagonal(self) -> np.ndarray:
        v = self.valid[..., None]
        m_sum = _box_sum((self.inv * self.valid[..., None, None]).reshape(*self.valid.shape, 9)).reshape(
            *self.valid.shape, 3, 3)
        m_mu = np.einsum("hwij,hwj->hwi", self.inv, self.mean)
        s_m_mu = _box_sum(m_mu * v)
        s_mu_m_mu = _box_sum(np.einsum("hwi,hwi->hw", self.mean, m_mu) * self.valid)
        img = self.image
        quad = np.einsum("hwi,hwij,hwj->hw", img, m_sum, img) - 2 * np.einsum("hwi,hwi->hw", img, s_m_mu) + s_mu_m_mu
        return self.count * (8.0 / 9.0) - quad / 9.0

    def diagonal(self) -> np.ndarray:
        return self._diag

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        """L @ x for x of shape (H, W)."""
        mx = cv2.blur(x, (3, 3), borderType=cv2.BORDER_REFLECT)
        mix = cv2.blur(self.image * x[..., None], (3, 3), borderType=cv2.BORDER_REFLECT)
        v = np.einsum("hwij,hwj->hwi", self.inv, mix - self.mean * mx[..., None]) * self.valid[..., None]
        s_mx = _box_sum(mx * self.valid)
        s_v = _box_sum(v)
        s_mu_v = _box_sum(np.einsum("hwi,hwi->hw", self.mean, v))
        return self.count * x - s_mx - np.einsum("hwi,hwi->hw", self.image, s_v) + s_mu_v


def solve(lap: MattingLaplacian, target: np.ndarray, weight: np.ndarray, x0: np.ndarray,
          iters: int = 400, tol: float = 1e-6) -> np.ndarray:
    """Jacobi-preconditioned conjugate gradients on (L + diag(w)) x = w * t."""
    w = weight.astype(np.float64)
    b = w * target

    def apply(x: np.ndarray) -> np.ndarray:
        return lap @ x + w * x

    inv_diag = 1.0 / np.maximum(lap.diagonal() + w, 1e-12)
    x = x0.astype(np.float64).copy()
    r = b - apply(x)
    z = r * inv_diag
    p = z.copy()
    rz = float((r * z).sum())
    b_norm = float(np.linalg.norm(b)) or 1.0
    for _ in range(iters):
        if float(np.linalg.norm(r)) <= tol * b_norm:
            break
        ap = apply(p)
        step = rz / float((p * ap).sum())
        x += step * p
        r -= step * ap
        z = r * inv_diag
        rz_new = float((r * z).sum())
        p = z + (rz_new / rz) * p
        rz = rz_new
    return x


def closed_form(image: np.ndarray, cons: Constraints, eps: float = EPS) -> np.ndarray:
    """Closed-form matte of a float image in [0, 1] under the constraints, coarse to fine."""
    h, w = image.shape[:2]
    levels = [(w, h)]
    while max(levels[-1]) > 2 * _COARSEST:
        lw, lh = levels[-1]
        levels.append(((lw + 1) // 2, (lh + 1) // 2))
    x = None
    for k, (lw, lh) in enumerate(reversed(levels)):
        finest = k == len(levels) - 1
        img = image if finest else cv2.resize(image, (lw, lh), interpolation=cv2.INTER_AREA)
        wt = cons.weight if finest else cv2.resize(cons.weight, (lw, lh), interpolation=cv2.INTER_AREA)
        wtt = (cons.weight * cons.target) if finest else cv2.resize(cons.weight * cons.target, (lw, lh),
                                                                      interpolation=cv2.INTER_AREA)
        tgt = np.divide(wtt, wt, out=np.zeros_like(wtt), where=wt > 0)
        x0 = np.where(wt >= HARD / 2, tgt, 0.5) if x is None else cv2.resize(x, (lw, lh), interpolation=cv2.INTER_LINEAR)
        x = solve(MattingLaplacian(img, eps), tgt, wt, x0, iters=600 if k == 0 else 200)
    assert x is not None
    return np.clip(x, 0.0, 1.0).astype(np.float32)


def _as_float_image(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3) RGB, got shape {a.shape}")
    if a.shape[0] < 3 or a.shape[1] < 3:
        raise ValueError(f"image must be at least 3x3 pixels, got {a.shape[1]}x{a.shape[0]}")
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    f = a.astype(np.float64)
    if not np.all(np.isfinite(f)) or f.min() < 0.0 or f.max() > 1.0:
        raise ValueError("a float image must hold finite values in [0, 1]")
    return f


def classical_matte(image: np.ndarray, prompts: Prompts, max_side: int = 512, eps: float = EPS) -> np.ndarray:
    """Alpha (H, W) float32 in [0, 1] of the person the prompts point at, without any learning.

    ``image`` is (H, W, 3) RGB, uint8 or float in [0, 1]; prompts are in its pixels. Images with a
    side over ``max_side`` are solved at that size and the matte is upsampled bilinearly."""
    img = _as_float_image(image)
    h, w = img.shape[:2]
    cons = prompt_constraints(prompts, w, h)
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return closed_form(img, cons, eps)
    sw, sh = max(3, int(round(w * scale))), max(3, int(round(h * scale)))
    small = Constraints(
        cv2.resize(cons.target, (sw, sh), interpolation=cv2.INTER_NEAREST),
        cv2.resize(cons.weight, (sw, sh), interpolation=cv2.INTER_NEAREST),
    )
    alpha = closed_form(cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA), small, eps)
    return np.clip(cv2.resize(alpha, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)
