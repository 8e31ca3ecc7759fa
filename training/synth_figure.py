"""Procedural people for the synthetic generator: one figure as a premultiplied RGBA layer.

A figure is built from soft-edged ellipses, polygons and thick lines (head, neck, torso, arms,
hands, legs, feet), hair as a cap plus hundreds of anti-aliased one-pixel strands (the fine,
partly transparent structure matting is about), optional semi-transparent cloth (a skirt or a
shawl you can see the body through) and optional motion blur. Parts are stacked with the "over"
operator inside the figure, so the layer's alpha is the figure's true coverage.

Everything is drawn in a crop around the figure (not the full image) to keep generation fast.
The same renderer draws mannequins (no hair, one flat colour) that the scene uses as
person-like distractors which are not instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

_SHIFT = 4  # sub-pixel precision of cv2 drawing: coordinates are scaled by 2**_SHIFT
_ONE = 1 << _SHIFT


@dataclass
class Layer:
    """Premultiplied colour and alpha of one object in a crop placed at (x0, y0) of the image."""

    colour: np.ndarray  # (h, w, 3) float32, premultiplied by alpha, RGB in [0, 1]
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    x0: int
    y0: int


@dataclass
class FigureStyle:
    """What a figure looks like; the colours' names feed the text descriptions."""

    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    top: tuple[float, float, float]
    bottom: tuple[float, float, float]
    long_hair: bool = False
    cloth: str | None = None  # None, "skirt" or "shawl"
    cloth_colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    cloth_opacity: float = 0.6
    motion_blur: float = 0.0  # blur length in pixels (0 = sharp)
    mannequin: bool = False
    pose: dict[str, float] = field(default_factory=dict)


def _pt(x: float, y: float) -> tuple[int, int]:
    return int(round(x * _ONE)), int(round(y * _ONE))


def _over(colour: np.ndarray, alpha: np.ndarray, mask: np.ndarray, rgb: tuple[float, float, float],
          opacity: float = 1.0) -> None:
    """Put a flat-coloured part (uint8 coverage mask) over the figure, in place.

    Only the mask's bounding box is touched: most parts cover a small part of the crop."""
    x, y, bw, bh = cv2.boundingRect(mask)
    if bw == 0 or bh == 0:
        return
    a = mask[y : y + bh, x : x + bw].astype(np.float32) * np.float32(opacity / 255.0)
    keep = 1.0 - a
    c = colour[y : y + bh, x : x + bw]
    c *= spread(keep)
    c += cv2.merge([a * np.float32(v) for v in rgb])
    al = alpha[y : y + bh, x : x + bw]
    al *= keep
    al += a


def spread(a: np.ndarray) -> np.ndarray:
    """(h, w) -> (h, w, 3). numpy's ``a[..., None]`` broadcasting over 3 channels is several
    times slower than this copy, and it is the generator's inner loop."""
    return cv2.merge([a, a, a])


def _soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Blur a drawn mask a little: real boundaries are never one-pixel steps."""
    if sigma <= 0.3:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigma)


def _limb(mask: np.ndarray, pts: list[tuple[float, float]], thickness: float) -> None:
    for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:], strict=True):
        cv2.line(mask, _pt(xa, ya), _pt(xb, yb), 255, max(1, int(round(thickness))), cv2.LINE_AA, _SHIFT)
    for x, y in pts:  # round joints
        cv2.circle(mask, _pt(x, y), int(round(thickness / 2 * _ONE)), 255, -1, cv2.LINE_AA, _SHIFT)


def _strands(rng: np.random.Generator, shape: tuple[int, int], cx: float, cy: float, rx: float, ry: float,
             u: float, long_hair: bool) -> list[tuple[np.ndarray, float]]:
    """Hair strands as (uint8 mask, opacity) groups. Each group is drawn at one value so cv2's
    anti-aliasing never darkens a strand another strand already drew."""
    groups = []
    n = int(rng.integers(60, 160))
    lo, hi = (math.radians(150), math.radians(390)) if long_hair else (math.radians(185), math.radians(355))
    for opacity in (0.35, 0.6, 0.9):
        mask = np.zeros(shape, np.uint8)
        lines = []
        for _ in range(n // 3):
            phi = rng.uniform(lo, hi)
            x, y = cx + rx * math.cos(phi), cy + ry * math.sin(phi)
            # outward direction, bent down by gravity as the strand grows
            dx, dy = math.cos(phi), math.sin(phi)
            length = u * (rng.uniform(0.06, 0.3) if long_hair else rng.uniform(0.015, 0.06))
            curl = rng.normal(0.0, 0.35)
            pts = [(x, y)]
            steps = 5
            for _s in range(steps):
                dx, dy = dx + curl * -dy * 0.4, dy + 0.35  # bend and fall
                norm = math.hypot(dx, dy) or 1.0
                dx, dy = dx / norm, dy / norm
                x, y = x + dx * length / steps, y + dy * length / steps
                pts.append((x, y))
            lines.append(np.array([_pt(px, py) for px, py in pts], np.int32))
        cv2.polylines(mask, lines, False, 255, 1, cv2.LINE_AA, _SHIFT)
        groups.append((mask, opacity))
    return groups


def render_figure(rng: np.random.Generator, height: float, feet: tuple[float, float], style: FigureStyle) -> Layer:
    """A standing person ``height`` pixels tall whose feet are at image point ``feet``."""
    u = float(height)
    m = int(math.ceil(0.06 * u + style.motion_blur + 4))  # margin for strands, arms, blur
    w = int(math.ceil(0.95 * u)) + 2 * m
    h = int(math.ceil(1.02 * u)) + 2 * m
    ox, oy = w / 2.0, float(m)  # local origin: top of the head, body centre line
    colour = np.zeros((h, w, 3), np.float32)
    alpha = np.zeros((h, w), np.float32)
    soft = max(0.5, 0.003 * u)
    pose = style.pose
    build = pose.get("build", 1.0)

    def mask() -> np.ndarray:
        return np.zeros((h, w), np.uint8)

    def part(draw_mask: np.ndarray, rgb: tuple[float, float, float], opacity: float = 1.0) -> None:
        _over(colour, alpha, _soften(draw_mask, soft), rgb, opacity)

    def P(x: float, y: float) -> tuple[float, float]:
        return ox + x * u, oy + y * u

    mono = style.mannequin
    skin = style.skin
    # long hair hangs behind the head and shoulders
    if style.long_hair and not mono:
        mk = mask()
        poly = [P(-0.07, 0.05), P(0.07, 0.05), P(0.085, 0.24), P(-0.085, 0.24)]
        cv2.fillPoly(mk, [np.array([_pt(*p) for p in poly], np.int32)], 255, cv2.LINE_AA, _SHIFT)
        part(mk, style.hair)
    # legs and feet
    stride = pose.get("stride", 0.0)
    for side in (-1, 1):
        mk = mask()
        hip = P(side * 0.045 * build, 0.52)
        knee = P(side * 0.05 * build + stride * side * 0.5, 0.75)
        ankle = P(side * 0.05 * build + stride * side, 0.965)
        _limb(mk, [hip, knee, ankle], 0.075 * u * build)
        part(mk, style.bottom)
        fk = mask()
        cv2.ellipse(fk, _pt(ankle[0] + side * 0.015 * u, ankle[1] + 0.012 * u), _pt(0.035 * u, 0.016 * u),
                    0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
        part(fk, (0.12, 0.1, 0.09) if not mono else style.top)
    # torso
    mk = mask()
    torso = [P(-0.12 * build, 0.185), P(0.12 * build, 0.185), P(0.095 * build, 0.42), P(0.105 * build, 0.55),
             P(-0.105 * build, 0.55), P(-0.095 * build, 0.42)]
    cv2.fillPoly(mk, [np.array([_pt(*p) for p in torso], np.int32)], 255, cv2.LINE_AA, _SHIFT)
    part(mk, style.top)
    # arms: upper arm in the top's colour, forearm skin, hand
    for side in (-1, 1):
        swing = pose.get("arm_l" if side < 0 else "arm_r", 0.2)
        bend = pose.get("bend_l" if side < 0 else "bend_r", 0.2)
        sx, sy = P(side * 0.115 * build, 0.205)
        ex = sx + side * math.sin(swing) * 0.17 * u
        ey = sy + math.cos(swing) * 0.17 * u
        ang = swing - bend  # angles from the vertical, positive = away from the body
        hx = ex + side * math.sin(ang) * 0.16 * u
        hy = ey + math.cos(ang) * 0.16 * u
        mk = mask()
        _limb(mk, [(sx, sy), (ex, ey)], 0.06 * u * build)
        part(mk, style.top)
        mk = mask()
        _limb(mk, [(ex, ey), (hx, hy)], 0.05 * u * build)
        part(mk, skin if not mono else style.top)
        mk = mask()
        cv2.circle(mk, _pt(hx, hy), int(0.028 * u * _ONE), 255, -1, cv2.LINE_AA, _SHIFT)
        part(mk, skin)
    # neck and head
    mk = mask()
    cv2.fillPoly(mk, [np.array([_pt(*p) for p in (P(-0.03, 0.12), P(0.03, 0.12), P(0.035, 0.2),
                                                    P(-0.035, 0.2))], np.int32)], 255, cv2.LINE_AA, _SHIFT)
    part(mk, skin)
    hcx, hcy = P(pose.get("head_tilt", 0.0) * 0.02, 0.075)
    hrx, hry = 0.055 * u, 0.07 * u
    mk = mask()
    cv2.ellipse(mk, _pt(hcx, hcy), _pt(hrx, hry), 0, 0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    part(mk, skin)
    if not mono:
        # hair cap over the top of the head, then strands that leave the silhouette
        mk = mask()
        cv2.ellipse(mk, _pt(hcx, hcy - 0.012 * u), _pt(hrx * 1.08, hry * 0.85), 0, 180, 360, 255, -1,
                    cv2.LINE_AA, _SHIFT)
        part(mk, style.hair)
        for strand_mask, opacity in _strands(rng, (h, w), hcx, hcy - 0.01 * u, hrx * 1.02, hry * 0.9, u,
                                             style.long_hair):
            _over(colour, alpha, strand_mask, style.hair, opacity)
    # semi-transparent cloth in front of the body
    if style.cloth is not None and not mono:
        mk = mask()
        if style.cloth == "skirt":
            poly = [P(-0.1, 0.44), P(0.1, 0.44), P(0.17, 0.74), P(-0.17, 0.74)]
        else:  # shawl over the shoulders
            poly = [P(-0.14, 0.17), P(0.14, 0.17), P(0.16, 0.36), P(0.0, 0.42), P(-0.16, 0.36)]
        cv2.fillPoly(mk, [np.array([_pt(*p) for p in poly], np.int32)], 255, cv2.LINE_AA, _SHIFT)
        part(mk, style.cloth_colour, style.cloth_opacity)
    # side lighting, on colour only (alpha is coverage, not brightness)
    light = np.linspace(pose.get("light_a", 1.1), pose.get("light_b", 0.85), w, dtype=np.float32)
    colour *= light[None, :, None]
    if style.motion_blur >= 1.0:
        colour, alpha = _motion_blur(colour, alpha, style.motion_blur, pose.get("blur_angle", 0.0))
    alpha = np.clip(alpha, 0.0, 1.0)  # float32 rounding can leave 1 + 1e-7
    colour = np.clip(cv2.min(colour, spread(alpha)), 0.0, None)  # premultiplied: colour <= alpha
    x0 = int(round(feet[0] - ox))
    y0 = int(round(feet[1] - (oy + 0.99 * u)))
    # trim to the figure's extent: the crop was drawn generously, compositing need not be
    bx, by, bw, bh = cv2.boundingRect((alpha > 0).astype(np.uint8))
    return Layer(colour[by : by + bh, bx : bx + bw].copy(), alpha[by : by + bh, bx : bx + bw].copy(), x0 + bx, y0 + by)


def _motion_blur(colour: np.ndarray, alpha: np.ndarray, length: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Blur premultiplied colour and alpha with the same line kernel, so they stay consistent."""
    k = int(math.ceil(length)) | 1
    kernel = np.zeros((k, k), np.float32)
    c = k // 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))), (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    kernel /= kernel.sum()
    return (cv2.filter2D(colour, -1, kernel, borderType=cv2.BORDER_CONSTANT),
            cv2.filter2D(alpha, -1, kernel, borderType=cv2.BORDER_CONSTANT))
