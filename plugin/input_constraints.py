"""Clicks and scribbles as promises kept: the pixels under each one take its label in the final
alpha (1 for foreground, 0 for background), whatever the decoder and MRN made of them.

Why: the decoder weighs every input against the image, and MRN, trained to correct coarse masks,
can erase a region at the very spot the user clicked. The result is the worst thing an
interactive tool can do: a designer clicks the same spot round after round and nothing changes
(stop 24's NoC traces showed a foreground click with coarse 1.00 and alpha 0.18 seven rounds
running). Only the input's own footprint is pinned: a dot of INPUT_RADIUS of the image's longer
side around a click, a stroke that wide along a scribble. Wider reaches were measured and
dropped (docs/engine.md): pulling alpha to the coarse mask within 2 % of the side helped NoC a
little but blurred MRN's edges, most on 1024-px images, where the coarse mask is ten times
coarser than the pixels. Scribbles come first and clicks last, each list in the order given, so
a later input wins where two overlap.
"""

from __future__ import annotations

import cv2
import numpy as np

from .prompts import Prompts

__all__ = ["INPUT_RADIUS", "footprint", "keep_inputs", "input_radius"]

#: The radius of an input's footprint, as a fraction of the image's longer side.
INPUT_RADIUS = 0.005


def input_radius(height: int, width: int) -> int:
    """Pixels an input's footprint reaches from its points on an image of this size (at least 1)."""
    return max(1, int(round(INPUT_RADIUS * max(height, width))))


def keep_inputs(alpha: np.ndarray, prompts: Prompts) -> np.ndarray:
    """``alpha`` (H, W) with the footprint of every click and scribble of ``prompts`` set to its
    label. Returns a new array; boxes and text pin nothing (neither is a promise about a pixel)."""
    alpha = np.asarray(alpha, np.float32)
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be an (H, W) map, got shape {alpha.shape}")
    out = alpha.copy()
    h, w = alpha.shape
    radius = input_radius(h, w)
    inputs = [(pts, fg) for pts, fg in prompts.scribbles] + [(((x, y),), fg) for x, y, fg in prompts.clicks]
    for points, foreground in inputs:
        pixels = np.array([[min(w - 1, max(0, int(np.floor(x)))), min(h - 1, max(0, int(np.floor(y))))]
                           for x, y in points], np.int32)
        x0, y0 = np.maximum(pixels.min(axis=0) - radius, 0)
        x1, y1 = np.minimum(pixels.max(axis=0) + radius + 1, (w, h))
        under = footprint((y1 - y0, x1 - x0), pixels - (x0, y0), radius)
        out[y0:y1, x0:x1][under] = 1.0 if foreground else 0.0
    return out


def footprint(shape: tuple[int, int], points: np.ndarray, radius: int) -> np.ndarray:
    """(h, w) bool: a disk (one point) or a polyline band of ``radius`` pixels through ``points``
    ((N, 2) integer pixel x, y). Shared with the simulated user, whose inputs cover pixels alike."""
    m = np.zeros(shape, np.uint8)
    if len(points) == 1:
        cv2.circle(m, (int(points[0][0]), int(points[0][1])), radius, 1, -1)
    else:
        cv2.polylines(m, [points.reshape(-1, 1, 2)], False, 1, thickness=2 * radius + 1)
    return m.astype(bool)
