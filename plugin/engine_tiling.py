"""Geometry of the refinement stage: bilinear upsampling of the low-res mask, padding to
multiples of 8, and overlapping tiles for images too large to refine at once.

Tiles are blended with linear ramps across their overlaps. The ramps are separable (a weight
per row times a weight per column), so their sum is too, and normalising needs two 1-D arrays
instead of a second full-size image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out_size, in_size) weights of 1-D bilinear resampling with half-pixel centres and edge
    clamping: PyTorch's ``interpolate(mode="bilinear", align_corners=False)`` (and OpenCV's
    INTER_LINEAR) when enlarging."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size, dtype=np.float64) + 0.5) * scale - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    frac = src - i0
    m = np.zeros((out_size, in_size), np.float32)
    rows = np.arange(out_size)
    np.add.at(m, (rows, i0), 1.0 - frac)
    np.add.at(m, (rows, i1), frac)
    return m


def upsample(low: np.ndarray, height: int, width: int, rows: slice = slice(None), cols: slice = slice(None)) -> np.ndarray:
    """Bilinear upsampling of a 2-D map to (height, width), or only the window ``rows`` x ``cols``
    of it (what a tile needs), as float32."""
    ry = bilinear_matrix(height, low.shape[0])[rows]
    rx = bilinear_matrix(width, low.shape[1])[cols]
    # float32 throughout: a full 8000 x 8000 result is 256 MB, not twice that in float64.
    return ry @ (low.astype(np.float32) @ rx.T)


def pad_to_multiple(array: np.ndarray, multiple: int = 8) -> np.ndarray:
    """Edge-replicate the last two axes up to multiples of ``multiple`` (what MRN does inside)."""
    h, w = array.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return array
    pad = [(0, 0)] * (array.ndim - 2) + [(0, ph), (0, pw)]
    return np.pad(array, pad, mode="edge")


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start of every tile along one axis: step ``tile - overlap``, the last flush with the end."""
    if tile <= overlap:
        raise ValueError(f"tile ({tile}) must be larger than overlap ({overlap})")
    if length <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, length - tile, step))
    starts.append(length - tile)
    return starts


def ramp(start: int, stop: int, length: int, overlap: int) -> np.ndarray:
    """1-D blending weight of a tile [start, stop): rising over ``overlap`` pixels on sides
    that have a neighbour, flat (1) at the image border. Always > 0."""
    n = stop - start
    w = np.ones(n, np.float32)
    if overlap <= 0:
        return w
    t = (np.arange(n, dtype=np.float32) + 0.5) / overlap
    if start > 0:
        w = np.minimum(w, t)
    if stop < length:
        w = np.minimum(w, t[::-1])
    return w


def refine_tiled(
    height: int,
    width: int,
    refine: Callable[[slice, slice], np.ndarray],
    tile: int,
    overlap: int,
) -> np.ndarray:
    """Run ``refine(rows, cols) -> (h, w) alpha`` on overlapping tiles and blend them into one
    (height, width) float32 matte."""
    out = np.zeros((height, width), np.float32)
    ys, xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    wy_sum = np.zeros(height, np.float32)
    wx_sum = np.zeros(width, np.float32)
    for y0 in ys:
        y1 = min(y0 + tile, height)
        wy_sum[y0:y1] += ramp(y0, y1, height, overlap)
    for x0 in xs:
        x1 = min(x0 + tile, width)
        wx_sum[x0:x1] += ramp(x0, x1, width, overlap)
    for y0 in ys:
        y1 = min(y0 + tile, height)
        wy = ramp(y0, y1, height, overlap)[:, None]
        for x0 in xs:
            x1 = min(x0 + tile, width)
            wx = ramp(x0, x1, width, overlap)[None, :]
            part = refine(slice(y0, y1), slice(x0, x1))
            out[y0:y1, x0:x1] += part * (wy * wx)
    out /= wy_sum[:, None]
    out /= wx_sum[None, :]
    return out
