"""Cluttered backgrounds for the synthetic generator: gradients, textures and random shapes.

Real photos behind people are busy; a model trained on flat backgrounds learns to cut out
"anything not flat". With a horizon (scene mode) the picture is a wall or sky above a floor with a
visible ground line and perspective floor lines; without one (random mode) it is clutter with no
geometry, like the no-person backgrounds earlier compositing work used.
"""

from __future__ import annotations

import cv2
import numpy as np

from training.synth_figure import spread


def _gradient(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    c0 = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    c1 = rng.uniform(0.05, 0.95, 3).astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    # a linear ramp is computed on a coarse grid and resized: the same picture, far fewer operations
    sw, sh = max(2, w // 8), max(2, h // 8)
    x = np.linspace(-0.5, 0.5, sw, dtype=np.float32)[None, :] * np.float32(np.cos(theta))
    y = np.linspace(-0.5, 0.5, sh, dtype=np.float32)[:, None] * np.float32(np.sin(theta))
    t = np.clip(x + y + np.float32(0.5), 0.0, 1.0)[..., None]
    return cv2.resize(c0 + (c1 - c0) * t, (w, h), interpolation=cv2.INTER_LINEAR)


def _texture(rng: np.random.Generator, w: int, h: int, cell: int) -> np.ndarray:
    """Smooth random blotches: upsampled noise, (h, w) in about [-1, 1]."""
    small = rng.uniform(-1, 1, (max(2, h // cell + 2), max(2, w // cell + 2))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _shapes(rng: np.random.Generator, img: np.ndarray, count: int, y_lo: int, y_hi: int) -> None:
    """Rectangles (windows, boxes), discs and polygons in random colours, drawn in place."""
    h, w = img.shape[:2]
    span = max(1, y_hi - y_lo)
    for _ in range(count):
        colour = tuple(float(v) for v in rng.uniform(0, 1, 3))
        kind = rng.integers(0, 3)
        cx, cy = rng.uniform(0, w), y_lo + rng.uniform(0, span)
        r = rng.uniform(0.03, 0.15) * min(w, h)
        if kind == 0:
            p0 = (int(cx - r), int(cy - r * rng.uniform(0.4, 1.5)))
            p1 = (int(cx + r), int(cy + r * rng.uniform(0.4, 1.5)))
            cv2.rectangle(img, p0, p1, colour, -1, cv2.LINE_AA)
            if rng.random() < 0.5:  # a frame or window bars
                cv2.rectangle(img, p0, p1, tuple(c * 0.5 for c in colour), max(1, int(r * 0.08)), cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(img, (int(cx), int(cy)), int(r), colour, -1, cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 7))
            ang = np.sort(rng.uniform(0, 2 * np.pi, n))
            rad = r * rng.uniform(0.5, 1.2, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1).astype(np.int32)
            cv2.fillPoly(img, [pts], colour, cv2.LINE_AA)


def make_background(rng: np.random.Generator, w: int, h: int, horizon: float | None) -> np.ndarray:
    """(h, w, 3) float32 RGB in [0, 1]. ``horizon`` is the ground line's y in pixels (None: no
    ground, pure clutter)."""
    img = _gradient(rng, w, h)
    if horizon is not None:
        hy = int(round(horizon))
        floor = _gradient(rng, w, h) * rng.uniform(0.5, 0.9)
        img[hy:] = floor[hy:]
        # perspective floor lines: spacing grows towards the camera
        line_colour = tuple(float(v) for v in floor[min(h - 1, hy + 1), w // 2] * 0.7)
        y, step = float(hy), max(2.0, (h - hy) * 0.02)
        while y < h:
            cv2.line(img, (0, int(y)), (w - 1, int(y)), line_colour, 1, cv2.LINE_AA)
            y += step
            step *= 1.35
        _shapes(rng, img, int(rng.integers(6, 16)), 0, hy)
        _shapes(rng, img, int(rng.integers(1, 5)), hy, h)
        cv2.line(img, (0, hy), (w - 1, hy), tuple(float(v) for v in rng.uniform(0, 0.3, 3)),
                 max(1, h // 170), cv2.LINE_AA)
    else:
        _shapes(rng, img, int(rng.integers(8, 22)), 0, h)
    if rng.random() < 0.5:  # some backgrounds are out of focus
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.5))
    tex = _texture(rng, w, h, int(rng.integers(8, 40)))
    grain = np.float32(0.015) * rng.standard_normal((h, w), dtype=np.float32)  # sensor grain
    img += spread(np.float32(rng.uniform(0.03, 0.1)) * tex + grain)
    np.clip(img, 0.0, 1.0, out=img)
    return img
