"""Snap the matte's outline to the picture's own edges with a colour guided filter (He, Sun and
Tang, "Guided Image Filtering", 2010), guided by the image's pixels.

Why: the networks give outlines rounder than the person's (docs/model_card.md, Known limits),
and almost every pixel the 0.5 threshold gets wrong lies within two pixels of the outline. The
guided filter fits, in every small window, alpha as a linear function of the colour there; where
a person's colour meets the background's, that line is the one closed-form matting solves for,
so the outline moves to where the colours change and a soft edge keeps the blend the picture
has. Inside a person or in the background the window is flat and the matte stays as it was.
It runs on the window the networks saw (the frame) at their scale: the filter's coefficients are
fitted on the frame brought to the encoder's input side, then applied at the picture's pixels
(the "fast guided filter" of He and Sun, 2015), so a 4000-px photo costs what a 1024-px one does.
Only the rectangle around the matte's non-zero pixels is filtered.
"""

from __future__ import annotations

import cv2
import numpy as np

from .focus import Frame

__all__ = ["SNAP_EPS", "SNAP_RADIUS", "guided_filter", "snap_in_frame", "snap_to_edges"]

#: The filter's window radius in pixels of the picture, or of the networks' view when the frame
#: is larger than the encoder's input. 8 gave the lowest SAD on 384-px validation pictures
#: (4: more, 12 and 16: more SAD for a little more IoU).
SNAP_RADIUS = 8
#: Regularisation: how much colour change (on a 0-1 scale, squared) a window needs before alpha
#: follows it; lower follows fainter edges.
SNAP_EPS = 1e-5


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Window-averaged (a, b) with alpha ~ a . colour + b: a (H, W, 3), b (H, W)."""
    mean_i = np.stack([_box(guide[..., c], r) for c in range(3)], -1)
    mean_p = _box(p, r)
    cov_ip = np.stack([_box(guide[..., c] * p, r) for c in range(3)], -1) - mean_i * mean_p[..., None]
    # float64 from here: where the three channels change together (a grey edge) the matrix is
    # nearly singular and the cofactors cancel to within float32's rounding (det 0 was seen)
    var = {(i, j): (_box(guide[..., i] * guide[..., j], r) - mean_i[..., i] * mean_i[..., j]).astype(np.float64)
           for i in range(3) for j in range(i, 3)}
    s00, s01, s02 = var[0, 0] + eps, var[0, 1], var[0, 2]
    s11, s12, s22 = var[1, 1] + eps, var[1, 2], var[2, 2] + eps
    # the symmetric 3 x 3 inverse by cofactors, every pixel at once (np.linalg.solve is 5x slower)
    c00, c01, c02 = s11 * s22 - s12 * s12, s02 * s12 - s01 * s22, s01 * s12 - s02 * s11
    c11, c12, c22 = s00 * s22 - s02 * s02, s01 * s02 - s00 * s12, s00 * s11 - s01 * s01
    det = s00 * c00 + s01 * c01 + s02 * c02
    v0, v1, v2 = (cov_ip[..., c].astype(np.float64) for c in range(3))
    a = (np.stack([c00 * v0 + c01 * v1 + c02 * v2,
                   c01 * v0 + c11 * v1 + c12 * v2,
                   c02 * v0 + c12 * v1 + c22 * v2], -1) / det[..., None]).astype(np.float32)
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_i)
    mean_a = np.stack([_box(a[..., c], r) for c in range(3)], -1)
    return mean_a, _box(b, r)


def _unit(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(pixels, factor to 0-1): uint8 stays uint8 (a 16384-px picture is 0.8 GB, 3.2 as float32)."""
    image = np.asarray(image)
    return (image, 1.0 / 255.0) if image.dtype == np.uint8 else (image.astype(np.float32, copy=False), 1.0)


def guided_filter(guide: np.ndarray, p: np.ndarray, radius: int, eps: float = SNAP_EPS,
                  scale: float = 1.0) -> np.ndarray:
    """``p`` (H, W) filtered with the colour image ``guide`` (H, W, 3; uint8, or float in
    [0, 1]); ``scale`` > 1 fits the coefficients on both shrunk by it (radius in shrunk pixels)
    and applies them at full size one channel at a time, so memory stays at two float maps."""
    guide, unit = _unit(guide)
    p = np.asarray(p, np.float32)
    if guide.shape[:2] != p.shape or guide.ndim != 3 or guide.shape[2] != 3:
        raise ValueError(f"guide {guide.shape} and map {p.shape} must be (H, W, 3) and (H, W)")
    h, w = p.shape
    if scale <= 1.0:
        colour = guide.astype(np.float32) * np.float32(unit)
        mean_a, mean_b = _coefficients(colour, p, radius, eps)
        return np.einsum("hwc,hwc->hw", mean_a, colour) + mean_b
    sh, sw = max(1, round(h / scale)), max(1, round(w / scale))
    small_g = np.stack([cv2.resize(guide[..., c].astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA)
                        for c in range(3)], -1) * np.float32(unit)  # a channel at a time: one float map
    small_p = cv2.resize(p, (sw, sh), interpolation=cv2.INTER_AREA)
    mean_a, mean_b = _coefficients(small_g, small_p, radius, eps)
    out = np.zeros((h, w), np.float32)
    for c in range(3):
        part = cv2.resize(np.ascontiguousarray(mean_a[..., c]), (w, h), interpolation=cv2.INTER_LINEAR)
        part *= guide[..., c]
        out += part
        del part
    out *= np.float32(unit)
    out += cv2.resize(mean_b, (w, h), interpolation=cv2.INTER_LINEAR)
    return out


def snap_to_edges(alpha: np.ndarray, rgb: np.ndarray, view_scale: float,
                  radius: int = SNAP_RADIUS, eps: float = SNAP_EPS) -> np.ndarray:
    """``alpha`` (H, W) of the picture ``rgb`` (H, W, 3, uint8 or 0-1 float) with its outline
    moved onto the colour edges. ``view_scale``: the frame's side over the encoder's input;
    above 1 the filter is fitted at the networks' scale, otherwise at the picture's pixels
    (a magnified frame's matte comes back to them by pixel area). Returns a new array in
    [0, 1]; an all-zero matte comes back unchanged."""
    alpha = np.asarray(alpha, np.float32)
    if alpha.ndim != 2 or rgb.shape[:2] != alpha.shape:
        raise ValueError(f"alpha {alpha.shape} and image {rgb.shape} must cover the same pixels")
    some = alpha > 1.0 / 255.0
    ys, xs = np.flatnonzero(some.any(axis=1)), np.flatnonzero(some.any(axis=0))
    del some
    if len(xs) == 0:
        return alpha.copy()
    scale = max(float(view_scale), 1.0)
    reach = int(np.ceil(2 * (radius + 1) * scale))
    h, w = alpha.shape
    y0, y1 = max(0, ys[0] - reach), min(h, ys[-1] + 1 + reach)
    x0, x1 = max(0, xs[0] - reach), min(w, xs[-1] + 1 + reach)
    out = alpha.copy()
    snapped = guided_filter(rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1], radius, eps, scale)
    out[y0:y1, x0:x1] = np.clip(snapped, 0.0, 1.0, out=snapped)
    return out


def snap_in_frame(alpha: np.ndarray, rgb: np.ndarray, frame: Frame, image_size: int) -> np.ndarray:
    """A round's matte (over ``frame``, at its own or its view's size) snapped to the frame's
    pixels of ``rgb``, at the scale the networks (``image_size`` input) saw it: the engine's
    step, and the PyTorch predictor's, so a checkpoint scores as its export."""
    return snap_to_edges(frame.fit(alpha), frame.crop(rgb), frame.side / image_size)
