"""Simulated users (the paper's 5.2): the inputs a person would give, round after round.

Training and evaluation both use this module, so a model is trained on the same kind of inputs
it is scored with, and every method in an evaluation sees exactly the same inputs: the inputs
depend only on the simulator's seed, the ground truth, the round and the previous prediction
(never on call order or global random state).

Modes and rounds (docs/evaluation.md has the full rules):

- ``click``: 5 rounds of 3 clicks; ``scribble``: 5 rounds of 2 scribbles.
- ``box`` and ``text``: 1 round, straight from the ground truth.
- ``mix``: round 1 is the text plus one visual type (click, scribble or box, drawn by seed);
  rounds 2..5 are clicks or scribbles (drawn by seed per round).

Round 1 comes from the ground truth; later rounds go into the *most significant error region*
of the previous prediction: the largest connected region of wrongly labelled pixels after a
small erosion (misses and false positives are separate regions). A miss gets a foreground input,
a false positive a background one. A click goes to the region's point farthest from its
boundary; a scribble runs along the region's principal axis through that point, inside it.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from plugin.input_constraints import footprint
from plugin.prompts import Prompts

MODES = ("click", "scribble", "box", "text", "mix")
#: Rounds per mode in the paper's protocol.
ROUNDS = {"click": 5, "scribble": 5, "box": 1, "text": 1, "mix": 5}
CLICKS_PER_ROUND = 3
SCRIBBLES_PER_ROUND = 2
#: Box sides move by up to this fraction of the box size (per seed) so boxes are not pixel-exact.
BOX_JITTER = 0.03
#: An input "covers" its error pixels within this fraction of the image side (the CRM's reach).
COVER_RADIUS = 0.02

Point = tuple[float, float]


@dataclass(frozen=True)
class ErrorRegion:
    """One connected region of wrong pixels: ``mask`` (H, W) bool, ``foreground`` True when the
    prediction missed the target there (so the user adds foreground), False for a false positive."""

    mask: np.ndarray
    foreground: bool

    @property
    def area(self) -> int:
        return int(self.mask.sum())


def _digest(arr: np.ndarray) -> int:
    """A stable fingerprint of an array's content (seeds the per-image random draws)."""
    q = np.clip(np.rint(np.asarray(arr, np.float32) * 255.0), 0, 255).astype(np.uint8)
    return zlib.crc32(q.tobytes() + repr(q.shape).encode())


def _check_alpha(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float32)
    if a.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (H, W) map, got shape {a.shape}")
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"{name} must be a non-empty map of finite values")
    return a


def _erosion_radius(shape: tuple[int, int]) -> int:
    """Thin slivers along edges are not what a user corrects: erode by ~0.5 % of the side."""
    return max(1, int(round(0.005 * min(shape))))


def _bounds(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """The slices of the mask's bounding box grown by ``margin`` (clipped to the image); None
    when the mask is empty. The maps here are mostly empty, so the work is done on this window,
    with results equal to working on the whole image (outside it the mask is all zero)."""
    x, y, w, h = cv2.boundingRect(mask.astype(np.uint8))
    if w == 0 or h == 0:
        return None
    rows, cols = mask.shape
    return slice(max(0, y - margin), min(rows, y + h + margin)), slice(max(0, x - margin), min(cols, x + w + margin))


def _erode(mask: np.ndarray, radius: int) -> np.ndarray:
    mask = np.asarray(mask, bool)
    if radius <= 0:
        return mask
    out = np.zeros(mask.shape, bool)
    win = _bounds(mask, radius + 1)
    if win is None:
        return out
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    out[win] = cv2.erode(mask[win].astype(np.uint8), k, borderType=cv2.BORDER_CONSTANT, borderValue=0) > 0
    return out


def _inside_distance_window(mask: np.ndarray) -> tuple[np.ndarray, int, int] | None:
    """``distance_inside`` on the mask's bounding box: (distances, row offset, column offset)."""
    win = _bounds(mask)
    if win is None:
        return None
    padded = np.pad(mask[win].astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, 5)[1:-1, 1:-1], win[0].start, win[1].start


def distance_inside(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance of each mask pixel to the nearest non-mask pixel; the image border
    counts as outside, so a point is never placed hugging the border."""
    out = np.zeros(mask.shape, np.float32)
    found = _inside_distance_window(mask)
    if found is not None:
        dist, y0, x0 = found
        out[y0 : y0 + dist.shape[0], x0 : x0 + dist.shape[1]] = dist
    return out


def _where_at_least(mask: np.ndarray, fraction: float, slack: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(ys, xs) of the mask pixels whose inside distance is at least ``fraction`` x the maximum
    minus ``slack``, in the image's coordinates and raster order."""
    found = _inside_distance_window(mask)
    if found is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    dist, y0, x0 = found
    ys, xs = np.nonzero(dist >= fraction * dist.max() - slack)
    return ys + y0, xs + x0


def _largest_component(mask: np.ndarray) -> np.ndarray:
    out = np.zeros(mask.shape, bool)
    win = _bounds(mask)
    if win is None:
        return out
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask[win].astype(np.uint8), connectivity=8)
    if n <= 1:
        return out
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))  # ties: lowest label (raster order), deterministic
    out[win] = labels == best
    return out


def most_significant_error(gt: np.ndarray, pred: np.ndarray, covered: np.ndarray | None = None) -> ErrorRegion | None:
    """The largest connected region of wrong pixels (gt and pred thresholded at 0.5).

    Misses and false positives are separate regions. Each is eroded by ~0.5 % of the image side
    first so that one-pixel boundary disagreements do not win; a region that vanishes under
    erosion is used uneroded only when nothing else is left. ``covered`` pixels (already
    corrected by an input of this round) are not errors any more. None when nothing is wrong."""
    g = gt if gt.dtype == bool else gt > 0.5
    p = pred if pred.dtype == bool else pred > 0.5
    miss, false_pos = g & ~p, p & ~g
    if covered is not None:
        miss &= ~covered
        false_pos &= ~covered
    r = _erosion_radius(g.shape)
    for eroded in (True, False):
        best: ErrorRegion | None = None
        for err, fg in ((miss, True), (false_pos, False)):
            comp = _largest_component(_erode(err, r) if eroded else err)
            if comp.any() and (best is None or comp.sum() > best.area):
                best = ErrorRegion(comp, fg)
        if best is not None:
            return best
    return None


def deepest_point(mask: np.ndarray) -> tuple[float, float]:
    """The mask pixel farthest from its boundary, as the pixel-centre (x, y). Ties (a plateau, as
    along the middle of a rectangle) go to the tied pixel nearest the plateau's centre."""
    ys, xs = _where_at_least(mask, 1.0, 1e-3)
    i = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
    return float(xs[i]) + 0.5, float(ys[i]) + 0.5


def axis_stroke(mask: np.ndarray, through: Point | None = None, max_fraction: float = 0.8) -> list[Point]:
    """A straight stroke inside ``mask`` along its principal axis, through ``through`` (default:
    the deepest point): what a person drags across a region to mark it. The stroke covers the
    longest inside run of that line around the point, trimmed to ``max_fraction`` of it so its
    ends keep off the region's edge."""
    win = _bounds(mask)
    if win is None:
        raise ValueError("axis_stroke needs a non-empty mask")
    ys, xs = np.nonzero(mask[win])
    ys, xs = ys + win[0].start, xs + win[1].start
    cx, cy = through if through is not None else deepest_point(mask)
    coords = np.stack([xs + 0.5, ys + 0.5], 1)
    if len(xs) >= 2:
        cov = np.cov((coords - coords.mean(0)).T)
        vals, vecs = np.linalg.eigh(cov)
        d = vecs[:, int(np.argmax(vals))]
    else:
        d = np.array([1.0, 0.0])
    if d[0] < 0 or (d[0] == 0 and d[1] < 0):
        d = -d  # a canonical direction, so the same region always gives the same stroke
    h, w = mask.shape
    reach = int(np.hypot(h, w))
    ends = []
    for sign in (-1.0, 1.0):
        last = 0.0
        for t in np.arange(0.5, reach, 0.5):
            x, y = cx + sign * t * d[0], cy + sign * t * d[1]
            xi, yi = int(np.floor(x)), int(np.floor(y))
            if not (0 <= xi < w and 0 <= yi < h) or not mask[yi, xi]:
                break
            last = t
        ends.append(last * max_fraction)
    a = (cx - ends[0] * d[0], cy - ends[0] * d[1])
    b = (cx + ends[1] * d[0], cy + ends[1] * d[1])
    n = max(2, int(np.ceil(np.hypot(b[0] - a[0], b[1] - a[1]) / 2.0)) + 1)
    return [(float(a[0] + (b[0] - a[0]) * s), float(a[1] + (b[1] - a[1]) * s)) for s in np.linspace(0, 1, n)]


def _cover(shape: tuple[int, int], points: Sequence[Point]) -> np.ndarray:
    """Pixels an input marks: a disk of COVER_RADIUS (of the image side) along its points."""
    r = max(1, int(round(COVER_RADIUS * max(shape))))
    return footprint(shape, np.array([[np.floor(x), np.floor(y)] for x, y in points], np.int32), r)


def describe(gt: np.ndarray) -> str:
    """A fallback description from where and how big the target is, for instances with no text."""
    m = gt > 0.5
    if not m.any():
        return "the person"
    ys, xs = np.nonzero(m)
    h, w = m.shape
    cx = xs.mean() / w
    side = "on the left" if cx < 1 / 3 else "on the right" if cx > 2 / 3 else "in the middle"
    frac = m.mean()
    size = "large" if frac > 0.15 else "small" if frac < 0.03 else ""
    return " ".join(x for x in ("the", size, "person", side) if x)


class UserSimulator:
    """A deterministic simulated user for one input mode.

    ``first_round(gt, text, others)`` gives round 1 from the ground truth; ``next_round(gt,
    pred, round_index)`` gives the *new* inputs of a later round from the previous prediction.
    Accumulate rounds with ``Prompts.merged``. gt / pred are (H, W) floats in [0, 1].
    ``per_round`` overrides the number of clicks or scribbles per round (NoC uses 1 click)."""

    def __init__(self, mode: str, seed: int = 0, per_round: int | None = None):
        if mode not in MODES:
            raise ValueError(f"unknown input mode {mode!r}; choose one of {list(MODES)}")
        if per_round is not None and per_round < 1:
            raise ValueError(f"per_round must be at least 1, got {per_round}")
        self.mode = mode
        self.seed = int(seed)
        self.per_round = per_round

    @property
    def rounds(self) -> int:
        """Rounds of the paper's protocol for this mode (1 for box and text)."""
        return ROUNDS[self.mode]

    def _rng(self, gt: np.ndarray, round_index: int, extra: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed & 0xFFFFFFFF, _digest(gt), round_index, extra])

    def _count(self, kind: str) -> int:
        if self.per_round is not None:
            return self.per_round
        return CLICKS_PER_ROUND if kind == "click" else SCRIBBLES_PER_ROUND

    def mix_visual(self, gt: np.ndarray) -> str:
        """The visual type mixed with text in round 1 of ``mix`` mode (drawn by seed and image)."""
        return ("click", "scribble", "box")[int(self._rng(gt, 1, 7).integers(3))]

    def round_kind(self, gt: np.ndarray, round_index: int) -> str:
        """The input type of a round: fixed by the mode, or drawn by seed for ``mix``."""
        if self.mode != "mix":
            return self.mode
        if round_index == 1:
            return self.mix_visual(gt)
        return ("click", "scribble")[int(self._rng(gt, round_index, 11).integers(2))]

    # -- round 1 ---------------------------------------------------------------------------------
    def first_round(
        self, gt: np.ndarray, text: str | None = None, others: Sequence[np.ndarray] = ()
    ) -> Prompts:
        """Round 1 from the ground truth. ``others``: the other instances' alphas of the image
        (background inputs go on the nearest one, as a user separates touching people)."""
        gt = _check_alpha("gt", gt)
        others = [_check_alpha("others[i]", o) for o in others]
        for o in others:
            if o.shape != gt.shape:
                raise ValueError(f"other instance shape {o.shape} differs from gt {gt.shape}")
        if not (gt > 0.5).any():
            raise ValueError("the target has no pixel with alpha > 0.5; it cannot be pointed at")
        rng = self._rng(gt, 1)
        if self.mode == "text":
            return Prompts(texts=[self._text(gt, text)])
        kind = self.round_kind(gt, 1)
        visual = self._first_visual(kind, gt, others, rng)
        if self.mode == "mix":
            return visual.merged(Prompts(texts=[self._text(gt, text)]))
        return visual

    @staticmethod
    def _text(gt: np.ndarray, text: str | None) -> str:
        return text.strip() if text and text.strip() else describe(gt)

    def _first_visual(self, kind: str, gt: np.ndarray, others: Sequence[np.ndarray], rng: np.random.Generator) -> Prompts:
        if kind == "box":
            return Prompts(boxes=[self._box(gt, rng)])
        target = gt > 0.5
        core = _erode(target, _erosion_radius(gt.shape) * 2)
        if not core.any():
            core = target
        bg_region = self._background_region(gt, others)
        n = self._count(kind)
        # Foreground first: the first input always marks the target; one background input
        # (on a neighbour, or next to the target) when there are at least 3 inputs (clicks),
        # or as the second scribble.
        n_bg = 0 if bg_region is None else (1 if (kind == "click" and n >= 3) or (kind == "scribble" and n >= 2) else 0)
        regions = [(core, True)] * (n - n_bg) + [(bg_region, False)] * n_bg
        if kind == "click":
            clicks = []
            for region, fg in regions:
                x, y = self._random_deep_point(region, rng, [(cx, cy) for cx, cy, _ in clicks])
                clicks.append((x, y, fg))
            return Prompts(clicks=clicks)
        scribbles = []
        used = np.zeros_like(target)
        for region, fg in regions:
            free = region & ~used
            src = free if free.any() else region
            through = self._random_deep_point(src, rng, [])
            stroke = axis_stroke(src, through)
            scribbles.append((stroke, fg))
            used |= _cover(gt.shape, stroke)
        return Prompts(scribbles=scribbles)

    @staticmethod
    def _background_region(gt: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray | None:
        """Where round-1 background inputs go: the core of the neighbouring instance nearest the
        target; with no neighbour, a band of background around the target."""
        target = gt > 0.5
        dist_to_target = cv2.distanceTransform((~target).astype(np.uint8), cv2.DIST_L2, 5)
        best, best_d = None, np.inf
        for o in others:
            m = (o > 0.5) & ~target
            core = _erode(m, _erosion_radius(gt.shape))
            if core.any():
                d = float(dist_to_target[core].min())
                if d < best_d:
                    best, best_d = core, d
        if best is not None:
            return best
        side = min(gt.shape)
        near = (dist_to_target > 0.03 * side) & (dist_to_target < 0.12 * side) & (gt < 0.01)
        return near if near.any() else None

    @staticmethod
    def _random_deep_point(region: np.ndarray, rng: np.random.Generator, avoid: Sequence[Point]) -> Point:
        """A random pixel among the deeper half of the region (distance to its edge at least half
        the maximum), preferring ones far from earlier inputs: a random yet sensible user."""
        ys, xs = _where_at_least(region, 0.5)
        if avoid:
            px = xs + 0.5
            py = ys + 0.5
            d = np.min([np.hypot(px - ax, py - ay) for ax, ay in avoid], axis=0)
            keep = d >= np.median(d)
            ys, xs = ys[keep], xs[keep]
        i = int(rng.integers(len(xs)))
        return float(xs[i]) + 0.5, float(ys[i]) + 0.5

    @staticmethod
    def _box(gt: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float]:
        ys, xs = np.nonzero(gt > 0.5)
        h, w = gt.shape
        x0, x1 = float(xs.min()), float(xs.max()) + 1.0
        y0, y1 = float(ys.min()), float(ys.max()) + 1.0
        jx, jy = BOX_JITTER * (x1 - x0), BOX_JITTER * (y1 - y0)
        j = rng.uniform(-1.0, 1.0, 4)
        bx0 = float(np.clip(x0 + j[0] * jx, 0, w - 1))
        by0 = float(np.clip(y0 + j[1] * jy, 0, h - 1))
        bx1 = float(np.clip(x1 + j[2] * jx, bx0 + 1, w))
        by1 = float(np.clip(y1 + j[3] * jy, by0 + 1, h))
        return bx0, by0, bx1, by1

    # -- later rounds ----------------------------------------------------------------------------
    def next_round(self, gt: np.ndarray, pred: np.ndarray, round_index: int) -> Prompts:
        """New inputs of round ``round_index`` (>= 2) from the previous prediction ``pred``.

        Each input goes into the most significant error region left after the inputs already
        placed this round (their COVER_RADIUS counts as corrected). Fewer inputs come back when
        fewer error regions exist; an empty Prompts when the prediction is already right."""
        kind, count = self.correction_job(gt, pred, round_index)
        return corrective_inputs(kind, count, np.asarray(gt) > 0.5, np.asarray(pred) > 0.5)

    def correction_job(self, gt: np.ndarray, pred: np.ndarray, round_index: int) -> tuple[str, int]:
        """(kind, count) of round ``round_index``'s corrections, after checking the inputs: all that
        ``corrective_inputs`` needs besides the two masks (a ``mix`` round's kind is drawn from
        gt's exact values, so it is settled where gt is at hand)."""
        if self.mode in ("box", "text"):
            raise ValueError(f"{self.mode!r} input has a single round; next_round does not apply")
        if round_index < 2:
            raise ValueError(f"next_round is for rounds 2 and later, got {round_index}")
        gt = _check_alpha("gt", gt)
        pred = _check_alpha("pred", pred)
        if pred.shape != gt.shape:
            raise ValueError(f"pred shape {pred.shape} differs from gt {gt.shape}")
        kind = self.round_kind(gt, round_index)
        return kind, self._count(kind)


def corrective_inputs(kind: str, count: int, gt_mask: np.ndarray, pred_mask: np.ndarray) -> Prompts:
    """Up to ``count`` clicks or scribbles (``kind``) into the most significant error regions of
    ``pred_mask`` against ``gt_mask`` (both (H, W) bool: alpha > 0.5). Each input goes into the
    largest error region left after the inputs already placed (their COVER_RADIUS counts as
    corrected). A pure function of its arguments, so training can run it in worker processes
    (``training.sim_pool``) and get exactly what ``UserSimulator.next_round`` gives."""
    if kind not in ("click", "scribble"):
        raise ValueError(f"corrections are clicks or scribbles, got {kind!r}")
    gt_mask = np.asarray(gt_mask, bool)
    pred_mask = np.asarray(pred_mask, bool)
    if gt_mask.shape != pred_mask.shape or gt_mask.ndim != 2:
        raise ValueError(f"gt and pred masks must be two (H, W) maps of one shape, got {gt_mask.shape} and {pred_mask.shape}")
    covered = np.zeros(gt_mask.shape, bool)
    clicks: list[tuple[float, float, bool]] = []
    scribbles: list[tuple[list[Point], bool]] = []
    for _ in range(count):
        region = most_significant_error(gt_mask, pred_mask, covered)
        if region is None:
            break
        if kind == "click":
            x, y = deepest_point(region.mask)
            clicks.append((x, y, region.foreground))
            pts: list[Point] = [(x, y)]
        else:
            pts = axis_stroke(region.mask)
            scribbles.append((pts, region.foreground))
        covered |= _cover(gt_mask.shape, pts)
    return Prompts(clicks=clicks, scribbles=scribbles)
