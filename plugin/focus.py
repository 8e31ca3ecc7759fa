"""Zoom in on the target: from round 2 on (or with a box) the networks see a square crop around
what the previous round found and what the user marked, not the whole picture.

Why: ISCN sees any image as a 384-px square and answers with a 96-px mask. On a 1024-px image
one mask pixel covers ten image pixels, on a 4000-px photo forty, and MRN has to recover the
whole outline from that. Once the last round (or a box) says where the person is, a crop a
little larger than the person gives ISCN several times the pixels on the person and MRN a
coarse mask several times finer. Interactive segmentation has done this since RITM's "zoom-in".

A person smaller than the encoder's input gets a frame down to half that side, magnified to it
(``Frame.view``): ISCN then sees the person larger than in the picture, and MRN refines the
outline at that scale, where a one-pixel error of its own is half a pixel of the picture. On
384-px test pictures, where targets span 50 to 150 pixels and almost every pixel the 0.5
threshold gets wrong lies within two pixels of the outline, that lowered SAD and the clicks
NoC@90 needs (docs/model_history.md).

A ``Frame`` is the window the networks saw, in pixels of the full image. The round state keeps
its previous mask in its own frame; ``reframe`` carries it into the next round's frame.
Outside the frame the matte is 0: the frame holds the whole previous mask and every foreground
input with a margin, and a click on a part that was left out widens the next frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .prompts import Prompts

__all__ = ["EXPAND", "MAX_SHARE", "MAX_ZOOM", "Frame", "focus_frame", "frame_for_round", "reframe"]

#: The frame's side over the larger side of what it must hold (the previous mask, the boxes
#: and every foreground input).
EXPAND = 1.3
#: A frame covering more than this share of the image is not worth a second encoding: the
#: whole image is used.
MAX_SHARE = 0.7
#: How many times a frame may be magnified: it is never smaller than the encoder's input over
#: this (beyond 2x the view holds no detail the 2x view lacks; 3x measured the same).
MAX_ZOOM = 2.0


@dataclass(frozen=True)
class Frame:
    """A window [x0, x1) x [y0, y1) of an image, in whole pixels."""

    x0: int
    y0: int
    x1: int
    y1: int

    @classmethod
    def whole(cls, width: int, height: int) -> Frame:
        return cls(0, 0, width, height)

    @classmethod
    def from_list(cls, values: list[int] | tuple[int, ...] | None, width: int, height: int) -> Frame:
        """A frame stored in a round state; the whole image when none was stored (states
        written before frames existed) or when it does not fit this image."""
        if values is None or len(values) != 4:
            return cls.whole(width, height)
        x0, y0, x1, y1 = (int(v) for v in values)
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            return cls.whole(width, height)
        return cls(x0, y0, x1, y1)

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def side(self) -> int:
        return max(self.width, self.height)

    def as_list(self) -> list[int]:
        return [self.x0, self.y0, self.x1, self.y1]

    def crop(self, image: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(image[self.y0 : self.y1, self.x0 : self.x1])

    def view(self, image: np.ndarray, size: int) -> np.ndarray:
        """The frame's pixels as both networks see them: the crop, magnified (bicubic) so that
        its longer side is ``size`` when it is shorter. MRN works in pixels, so a magnified
        view is what lets it place an outline between the picture's pixels. A frame holding
        the whole picture is the picture itself, at any size: nothing says where to look."""
        crop = self.crop(image)
        zoom = size / max(self.width, self.height)
        if zoom <= 1.0 or crop.shape[:2] == image.shape[:2]:
            return crop
        shape = (max(1, round(self.width * zoom)), max(1, round(self.height * zoom)))
        big = cv2.resize(crop, shape, interpolation=cv2.INTER_CUBIC)
        return big if big.dtype == np.uint8 else np.clip(big, 0.0, 1.0)

    def paste(self, part: np.ndarray, width: int, height: int) -> np.ndarray:
        """A (height, width) float32 map: ``part`` (a map over the frame at its own or its
        ``view``'s size, brought back by pixel area) inside the frame, 0 outside."""
        out = np.zeros((height, width), np.float32)
        out[self.y0 : self.y1, self.x0 : self.x1] = self.fit(part)
        return out

    def fit(self, part: np.ndarray) -> np.ndarray:
        """``part`` (a map over the frame at its own or its ``view``'s size) as a float32 map
        of the frame's own pixels, brought back by pixel area."""
        part = np.asarray(part, np.float32)
        if part.shape != (self.height, self.width):
            part = cv2.resize(part, (self.width, self.height), interpolation=cv2.INTER_AREA)
        return part

    def prompts_inside(self, prompts: Prompts) -> Prompts:
        """``prompts`` in the frame's pixels. Foreground inputs and boxes lie inside by
        construction (``focus_frame``); a background input outside says nothing the frame's
        zero matte does not already keep, so background clicks outside are dropped and a
        background scribble keeps its runs of points inside, each run a scribble of its own
        (joined, a stroke that leaves and comes back would cut straight across the frame)."""
        w, h = self.width, self.height

        def local(x: float, y: float) -> tuple[float, float]:
            return min(max(x - self.x0, 0.0), w), min(max(y - self.y0, 0.0), h)

        def inside(x: float, y: float) -> bool:
            return self.x0 <= x <= self.x1 and self.y0 <= y <= self.y1

        clicks = [(*local(x, y), fg) for x, y, fg in prompts.clicks if fg or inside(x, y)]
        scribbles: list[tuple[list[tuple[float, float]], bool]] = []
        for points, fg in prompts.scribbles:
            run: list[tuple[float, float]] = []
            for x, y in points:
                if fg or inside(x, y):
                    run.append(local(x, y))
                elif run:
                    scribbles.append((run, fg))
                    run = []
            if run:
                scribbles.append((run, fg))
        boxes = [(*local(a, b), *local(c, d)) for a, b, c, d in prompts.boxes]
        return Prompts(clicks=clicks, scribbles=scribbles, boxes=boxes, texts=prompts.texts)


def focus_frame(
    prompts: Prompts,
    prev_mask: np.ndarray | None,
    prev_frame: Frame,
    width: int,
    height: int,
    min_side: int,
    expand: float = EXPAND,
    max_share: float = MAX_SHARE,
) -> Frame:
    """The frame this round's networks should see.

    The target's extent comes from the previous mask (probability > 0.5, read in
    ``prev_frame``) and the boxes; without either (round 1 with clicks, scribbles or text only)
    nothing says how big the person is, and the whole image is used. Foreground clicks and
    scribbles widen the extent. The frame is a square ``expand`` times the extent's larger
    side, at least ``min_side`` pixels, centred on the extent and shifted to lie inside the
    image. ``frame_for_round`` sets ``min_side`` to the encoder's input over ``MAX_ZOOM``."""
    whole = Frame.whole(width, height)
    xs: list[float] = []
    ys: list[float] = []
    if prev_mask is not None:
        rows, cols = np.nonzero(np.asarray(prev_mask) > 0.5)
        if rows.size:
            mh, mw = prev_mask.shape
            sx, sy = prev_frame.width / mw, prev_frame.height / mh
            xs += [prev_frame.x0 + cols.min() * sx, prev_frame.x0 + (cols.max() + 1) * sx]
            ys += [prev_frame.y0 + rows.min() * sy, prev_frame.y0 + (rows.max() + 1) * sy]
    for x0, y0, x1, y1 in prompts.boxes:
        xs += [x0, x1]
        ys += [y0, y1]
    if not xs:
        return whole
    for x, y, fg in prompts.clicks:
        if fg:
            xs.append(x)
            ys.append(y)
    for points, fg in prompts.scribbles:
        if fg:
            xs += [p[0] for p in points]
            ys += [p[1] for p in points]
    left, right, top, bottom = min(xs), max(xs), min(ys), max(ys)
    side = max(expand * max(right - left, bottom - top), float(min_side))
    fw, fh = min(side, width), min(side, height)
    fx = min(max((left + right - fw) / 2.0, 0.0), width - fw)
    fy = min(max((top + bottom - fh) / 2.0, 0.0), height - fh)
    frame = Frame(
        int(math.floor(fx)), int(math.floor(fy)),
        min(width, int(math.ceil(fx + fw))), min(height, int(math.ceil(fy + fh))),
    )
    if frame.width * frame.height > max_share * width * height:
        return whole
    return frame


def frame_for_round(
    prompts: Prompts, prev_mask: np.ndarray | None, prev_frame: Frame, width: int, height: int, size: int
) -> tuple[Frame, Prompts]:
    """This round's frame (``focus_frame``, at least ``size / MAX_ZOOM`` pixels for an encoder
    input of ``size``) and ``prompts`` in its pixels: what the engine and a checkpoint scored as
    its export both run. The whole image when dropping the background inputs outside the frame
    would leave no input at all."""
    frame = focus_frame(prompts, prev_mask, prev_frame, width, height, math.ceil(size / MAX_ZOOM))
    if frame != Frame.whole(width, height):
        local = frame.prompts_inside(prompts)
        if not local.is_empty():
            return frame, local
    return Frame.whole(width, height), prompts


def reframe(mask: np.ndarray, source: Frame, target: Frame, size: int) -> np.ndarray:
    """A (size, size) map in ``target`` from ``mask``, a map of any shape covering ``source``
    (bilinear; 0 where ``target`` reaches outside ``source``)."""
    mask = np.asarray(mask, np.float32)
    if source == target and mask.shape == (size, size):
        return mask.copy()
    mh, mw = mask.shape
    # Pixel centres: source index i sits at x = x0 + (i + 0.5) * w / mw in the image.
    ax = source.width / mw * size / target.width
    ay = source.height / mh * size / target.height
    bx = (source.x0 - target.x0 + 0.5 * source.width / mw) * size / target.width - 0.5
    by = (source.y0 - target.y0 + 0.5 * source.height / mh) * size / target.height - 0.5
    matrix = np.array([[ax, 0.0, bx], [0.0, ay, by]], np.float64)
    return cv2.warpAffine(mask, matrix, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
