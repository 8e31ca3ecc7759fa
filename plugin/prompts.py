"""User prompts (clicks, scribbles, boxes, text) and their fixed array form.

This module is the contract between every caller and every model: the PyTorch ISCN, the ONNX
decoder graph, the training simulator, the headless command and the GIMP plug-in all turn user
input into the same arrays here, so a prompt means the same thing in training and in GIMP.
It needs numpy only (the plug-in has no torch).

Coordinates are pixels of the input image, x to the right, y down, continuous (the centre of
pixel (i, j) is (i + 0.5, j + 0.5)); 0 <= x <= width and 0 <= y <= height. The arrays hold
them normalised to [0, 1] by the image size, so they survive any resize of the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Points per visual prompt: a click repeats its point, a scribble is resampled along its
#: arc length, a box holds its four corners and a 3x4 grid inside it.
POINTS_PER_PROMPT = 16

#: Prompt kinds as stored in ``PromptArrays.kinds``.
KIND_CLICK, KIND_SCRIBBLE, KIND_BOX = 0, 1, 2
KIND_NAMES = ("click", "scribble", "box")

Point = tuple[float, float]


@dataclass(frozen=True)
class Prompts:
    """What the user said about the one person they want, in pixels of the input image.

    clicks: ``(x, y, is_foreground)``; scribbles: ``(points, is_foreground)`` with at least one
    point; boxes: ``(x0, y0, x1, y1)`` around the target (always foreground); texts: free text.
    """

    clicks: Sequence[tuple[float, float, bool]] = ()
    scribbles: Sequence[tuple[Sequence[Point], bool]] = ()
    boxes: Sequence[tuple[float, float, float, float]] = ()
    texts: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Freeze to tuples so a Prompts can be hashed, compared and merged safely.
        object.__setattr__(self, "clicks", tuple((float(x), float(y), bool(fg)) for x, y, fg in self.clicks))
        object.__setattr__(
            self,
            "scribbles",
            tuple((tuple((float(x), float(y)) for x, y in pts), bool(fg)) for pts, fg in self.scribbles),
        )
        object.__setattr__(self, "boxes", tuple(tuple(float(v) for v in b) for b in self.boxes))
        object.__setattr__(self, "texts", tuple(str(t) for t in self.texts))

    @property
    def num_visual(self) -> int:
        return len(self.clicks) + len(self.scribbles) + len(self.boxes)

    @property
    def text(self) -> str:
        """All descriptions as one sentence: the text encoder sees one sequence per target."""
        return ". ".join(t.strip() for t in self.texts if t.strip())

    def is_empty(self) -> bool:
        return self.num_visual == 0 and not self.text

    def merged(self, other: Prompts) -> Prompts:
        """This round's inputs added to earlier ones (rounds accumulate their inputs).

        Inputs already present are not added twice, so a caller may pass every input it can
        see (e.g. all paths of a GIMP image) and only the new ones count as new."""
        other = other if isinstance(other, Prompts) else Prompts(**other)

        def add(old: tuple, new: tuple) -> tuple:
            return old + tuple(dict.fromkeys(x for x in new if x not in old))

        return Prompts(
            clicks=add(self.clicks, other.clicks),
            scribbles=add(self.scribbles, other.scribbles),
            boxes=add(self.boxes, other.boxes),
            texts=add(self.texts, other.texts),
        )

    def without(self, other: Prompts) -> Prompts:
        """The inputs of this that ``other`` does not hold (what is new this round)."""
        return Prompts(
            clicks=[c for c in self.clicks if c not in other.clicks],
            scribbles=[s for s in self.scribbles if s not in other.scribbles],
            boxes=[b for b in self.boxes if b not in other.boxes],
            texts=[t for t in self.texts if t not in other.texts],
        )

    def validate(self, width: int, height: int) -> None:
        """Raise ValueError naming the first wrong input; the caller's data stays untouched."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        if self.is_empty():
            raise ValueError("no inputs: give at least one click, scribble, box or text")

        def check_point(what: str, x: float, y: float) -> None:
            if not (math.isfinite(x) and math.isfinite(y)):
                raise ValueError(f"{what}: coordinates ({x}, {y}) are not finite numbers")
            if not (0.0 <= x <= width and 0.0 <= y <= height):
                raise ValueError(
                    f"{what}: point ({x:g}, {y:g}) is outside the {width}x{height} image"
                )

        for i, (x, y, _) in enumerate(self.clicks):
            check_point(f"click {i + 1}", x, y)
        for i, (pts, _) in enumerate(self.scribbles):
            if len(pts) == 0:
                raise ValueError(f"scribble {i + 1}: it has no points")
            for j, (x, y) in enumerate(pts):
                check_point(f"scribble {i + 1}, point {j + 1}", x, y)
        for i, (x0, y0, x1, y1) in enumerate(self.boxes):
            check_point(f"box {i + 1} corner (x0, y0)", x0, y0)
            check_point(f"box {i + 1} corner (x1, y1)", x1, y1)
            if not (x1 > x0 and y1 > y0):
                raise ValueError(
                    f"box {i + 1}: ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is degenerate; "
                    "it needs x1 > x0 and y1 > y0"
                )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form, for round state stored in files and GIMP parasites."""
        return {
            "clicks": [[x, y, fg] for x, y, fg in self.clicks],
            "scribbles": [[[list(p) for p in pts], fg] for pts, fg in self.scribbles],
            "boxes": [list(b) for b in self.boxes],
            "texts": list(self.texts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Prompts:
        return cls(
            clicks=[tuple(c) for c in data.get("clicks", [])],
            scribbles=[([tuple(p) for p in pts], fg) for pts, fg in data.get("scribbles", [])],
            boxes=[tuple(b) for b in data.get("boxes", [])],
            texts=list(data.get("texts", [])),
        )


@dataclass
class PromptArrays:
    """Visual prompts of one or more images as fixed-shape arrays (the decoder's input).

    Shapes carry a leading batch axis B; P is the number of prompt slots (at least 1, padded
    slots have ``valid == 0``); K is ``POINTS_PER_PROMPT``.
    points: float32 (B, P, K, 2), (x, y) normalised to [0, 1];
    kinds: int64 (B, P); labels: int64 (B, P), 1 foreground, 0 background; valid: float32 (B, P).
    """

    points: np.ndarray
    kinds: np.ndarray
    labels: np.ndarray
    valid: np.ndarray
    texts: list[str] = field(default_factory=list)


def resample_polyline(points: Sequence[Point], count: int = POINTS_PER_PROMPT) -> np.ndarray:
    """``count`` points evenly spaced by arc length along a stroke (its ends included)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 1:
        return np.repeat(pts, count, axis=0)
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total <= 0.0:
        return np.repeat(pts[:1], count, axis=0)
    targets = np.linspace(0.0, total, count)
    x = np.interp(targets, cum, pts[:, 0])
    y = np.interp(targets, cum, pts[:, 1])
    return np.stack([x, y], axis=1)


def box_points(box: tuple[float, float, float, float]) -> np.ndarray:
    """Four corners first (top-left, top-right, bottom-right, bottom-left), then a 3x4 grid inside."""
    x0, y0, x1, y1 = box
    corners = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    inner = [
        (x0 + (x1 - x0) * (i + 1) / 4.0, y0 + (y1 - y0) * (j + 1) / 5.0)
        for j in range(4)
        for i in range(3)
    ]
    return np.asarray(corners + inner, dtype=np.float64)


def encode_prompts(prompts: Prompts, width: int, height: int) -> PromptArrays:
    """Validate one image's prompts and lay them out as arrays with batch size 1."""
    prompts.validate(width, height)
    rows: list[tuple[np.ndarray, int, int]] = []
    for x, y, fg in prompts.clicks:
        rows.append((np.repeat([[x, y]], POINTS_PER_PROMPT, axis=0), KIND_CLICK, int(fg)))
    for pts, fg in prompts.scribbles:
        rows.append((resample_polyline(pts), KIND_SCRIBBLE, int(fg)))
    for box in prompts.boxes:
        rows.append((box_points(box), KIND_BOX, 1))
    p = max(1, len(rows))
    points = np.zeros((1, p, POINTS_PER_PROMPT, 2), np.float32)
    kinds = np.zeros((1, p), np.int64)
    labels = np.zeros((1, p), np.int64)
    valid = np.zeros((1, p), np.float32)
    scale = np.array([width, height], np.float64)
    for i, (pts, kind, label) in enumerate(rows):
        points[0, i] = np.clip(pts / scale, 0.0, 1.0)
        kinds[0, i] = kind
        labels[0, i] = label
        valid[0, i] = 1.0
    return PromptArrays(points, kinds, labels, valid, [prompts.text])


def collate_prompts(items: Sequence[PromptArrays]) -> PromptArrays:
    """Stack several images' prompt arrays, padding P with invalid slots."""
    if not items:
        raise ValueError("collate_prompts needs at least one item")
    p = max(it.points.shape[1] for it in items)
    b = sum(it.points.shape[0] for it in items)
    out = PromptArrays(
        np.zeros((b, p, POINTS_PER_PROMPT, 2), np.float32),
        np.zeros((b, p), np.int64),
        np.zeros((b, p), np.int64),
        np.zeros((b, p), np.float32),
        [],
    )
    row = 0
    for it in items:
        n, q = it.points.shape[:2]
        out.points[row : row + n, :q] = it.points
        out.kinds[row : row + n, :q] = it.kinds
        out.labels[row : row + n, :q] = it.labels
        out.valid[row : row + n, :q] = it.valid
        out.texts.extend(it.texts)
        row += n
    return out
