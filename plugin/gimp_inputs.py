"""GIMP-free half of the plug-in: plain data from GIMP in, prompts and parasites out.

The GIMP 3 plug-in (in-process) and the GIMP 2.10 worker (a Python 3 subprocess) both turn
what they read from GIMP (path names and strokes, selection bounds, the dialog's text and
choices, layer parasites) into the same ``Prompts`` and round state here, so the naming
convention, the click/scribble rule and the parasite layout are defined once and tested
without GIMP. Nothing here imports GIMP, torch or ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .prompts import Point, Prompts, resample_polyline

#: A stroke shorter than this (pixels along the curve) is a click, not a scribble.
CLICK_MAX_LENGTH = 4.0
#: Longest scribble kept, in points: the model resamples to 16 anyway, and the round state
#: (stored in a parasite) stays small.
MAX_SCRIBBLE_POINTS = 128
#: Name of the parasite holding the state header; chunks are ``dfimat-state.1`` ... ``.N``.
STATE_PARASITE = "dfimat-state"
#: Bytes per state chunk; a typical state is far below this, so it is one chunk.
STATE_CHUNK_BYTES = 256 * 1024
#: GIMP parasite flags: PERSISTENT (saved in XCF) | UNDOABLE (attaching is an undo step).
PARASITE_PERSISTENT = 1
PARASITE_UNDOABLE = 2
STATE_PARASITE_FLAGS = PARASITE_PERSISTENT | PARASITE_UNDOABLE

#: Dialog/script choices: the value a script passes -> what it means.
OUTPUTS = {"mask": "layer mask on the layer", "layer": "new layer holding the alpha", "selection": "selection"}
DEVICES = {"auto": "auto", "gpu": "cuda", "cpu": "cpu"}
MODELS = {"small": "DFIMat-S (fast)", "base": "DFIMat (best quality)"}
UNNAMED = {"foreground": True, "background": False, "ignore": None}

_FG_PREFIXES = ("fg", "+")
_BG_PREFIXES = ("bg", "-")


class InputError(ValueError):
    """The user's inputs cannot be used; the message names the path, stroke or option."""


@dataclass(frozen=True)
class StrokeData:
    """One stroke of a GIMP path as plain data, in image pixels.

    anchors: the Bezier anchor points (not the handles); samples: points along the curve
    (GIMP's stroke_interpolate); closed: whether the stroke is closed.
    """

    anchors: tuple[Point, ...]
    samples: tuple[Point, ...] = ()
    closed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "anchors", tuple((float(x), float(y)) for x, y in self.anchors))
        object.__setattr__(self, "samples", tuple((float(x), float(y)) for x, y in self.samples))
        object.__setattr__(self, "closed", bool(self.closed))

    def curve(self) -> tuple[Point, ...]:
        """The points along the stroke: its samples, or its anchors when GIMP gave none."""
        pts = self.samples or self.anchors
        if self.closed and len(pts) > 1 and pts[0] != pts[-1]:
            pts = pts + (pts[0],)
        return pts

    def length(self) -> float:
        pts = self.curve()
        return sum(math.dist(a, b) for a, b in zip(pts, pts[1:], strict=False))


@dataclass(frozen=True)
class PathData:
    """A GIMP path: its name (which says foreground or background) and its strokes."""

    name: str
    strokes: tuple[StrokeData, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "strokes", tuple(self.strokes))


def split_flat(coords: Sequence[float]) -> tuple[Point, ...]:
    """GIMP's flat ``[x0, y0, x1, y1, ...]`` as points."""
    if len(coords) % 2:
        raise InputError(f"a stroke has an odd number of coordinates ({len(coords)})")
    return tuple((float(coords[i]), float(coords[i + 1])) for i in range(0, len(coords), 2))


def anchors_from_control_points(coords: Sequence[float]) -> tuple[Point, ...]:
    """Anchors from ``stroke_get_points``' flat list, which holds (in-handle, anchor, out-handle)
    per anchor; the middle point of each triple is the anchor."""
    pts = split_flat(coords)
    if len(pts) % 3:
        # Not the documented triple layout: keep every point rather than guess.
        return pts
    return pts[1::3]


def path_role(name: str, unnamed: str = "foreground") -> bool | None:
    """True for a foreground path, False for background, None for one to ignore.

    ``fg...``/``+...`` are foreground and ``bg...``/``-...`` background (case and leading
    spaces ignored); any other name follows ``unnamed`` (what the dialog asked)."""
    if unnamed not in UNNAMED:
        raise InputError(f"unnamed paths must be one of {', '.join(UNNAMED)}, got {unnamed!r}")
    key = name.strip().lower()
    if key.startswith(_FG_PREFIXES):
        return True
    if key.startswith(_BG_PREFIXES):
        return False
    return UNNAMED[unnamed]


def selection_box(
    non_empty: bool, x1: float, y1: float, x2: float, y2: float
) -> tuple[float, float, float, float] | None:
    """The selection's bounds as a box (GIMP's x2/y2 are exclusive, i.e. pixel edges), or None."""
    if not non_empty or x2 <= x1 or y2 <= y1:
        return None
    return (float(x1), float(y1), float(x2), float(y2))


def _round_point(p: Point) -> Point:
    # Rounded so the same path gives the same floats every run and across the JSON state,
    # which lets Prompts.merged recognise inputs already used in an earlier round.
    return (round(p[0], 2), round(p[1], 2))


def _check_inside(what: str, pts: Iterable[Point], width: int, height: int) -> None:
    for x, y in pts:
        if not (math.isfinite(x) and math.isfinite(y)) or not (0.0 <= x <= width and 0.0 <= y <= height):
            raise InputError(
                f"{what} has a point at ({x:g}, {y:g}) outside the {width}x{height} layer; "
                "move it inside or delete it"
            )


def prompts_from_gimp(
    paths: Sequence[PathData],
    box: tuple[float, float, float, float] | None,
    texts: Sequence[str],
    width: int,
    height: int,
    unnamed: str = "foreground",
    offset: tuple[float, float] = (0.0, 0.0),
) -> Prompts:
    """All inputs of one run as ``Prompts`` in the target layer's pixels.

    ``offset`` is the layer's position in the image: GIMP gives paths and the selection in
    image pixels, the model sees the layer's pixels. A path outside the layer is an error
    naming the path (not silently clipped: the user would not see why the matte is wrong).
    The box is clipped to the layer, since a selection larger than the layer is common."""
    ox, oy = float(offset[0]), float(offset[1])
    clicks: list[tuple[float, float, bool]] = []
    scribbles: list[tuple[tuple[Point, ...], bool]] = []
    for path in paths:
        role = path_role(path.name, unnamed)
        if role is None:
            continue
        for k, stroke in enumerate(path.strokes, start=1):
            what = f"path {path.name!r}" + (f" (stroke {k})" if len(path.strokes) > 1 else "")
            curve = tuple(_round_point((x - ox, y - oy)) for x, y in stroke.curve())
            anchors = tuple((x - ox, y - oy) for x, y in stroke.anchors) or curve
            if not curve:
                continue
            _check_inside(what, curve + anchors, width, height)
            if len(stroke.anchors) <= 1 or stroke.length() < CLICK_MAX_LENGTH:
                cx = sum(p[0] for p in anchors) / len(anchors)
                cy = sum(p[1] for p in anchors) / len(anchors)
                x, y = _round_point((cx, cy))
                clicks.append((x, y, role))
            else:
                if len(curve) > MAX_SCRIBBLE_POINTS:
                    curve = tuple(_round_point((float(a), float(b))) for a, b in resample_polyline(curve, MAX_SCRIBBLE_POINTS))
                scribbles.append((curve, role))
    boxes = []
    if box is not None:
        x0, y0, x1, y1 = box
        clipped = (max(0.0, x0 - ox), max(0.0, y0 - oy), min(float(width), x1 - ox), min(float(height), y1 - oy))
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise InputError(
                f"the selection ({x0:g}, {y0:g})-({x1:g}, {y1:g}) does not overlap the layer; "
                "select a box around the person on this layer or select none"
            )
        boxes.append(clipped)
    prompts = Prompts(
        clicks=clicks, scribbles=scribbles, boxes=boxes, texts=[t.strip() for t in texts if t and t.strip()]
    )
    if prompts.is_empty():
        raise InputError(
            "no inputs: add a path named 'fg ...' (or '+...') on the person, a 'bg ...' path on "
            "what is not the person, a rectangle selection around them, or a description"
        )
    try:
        prompts.validate(width, height)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    return prompts


def choice(kind: str, value: str, allowed: Mapping[str, str | bool | None]) -> str:
    """A dialog/script choice, normalised; a wrong value names the option and what it accepts."""
    key = str(value).strip().lower()
    if key not in allowed:
        raise InputError(f"{kind} must be one of {', '.join(allowed)}, got {value!r}")
    return key


# ---- round state in parasites ---------------------------------------------------------------


def state_parasites(data: bytes, chunk_bytes: int = STATE_CHUNK_BYTES) -> dict[str, bytes]:
    """Parasites (name -> bytes) holding ``data``: a header and one or more chunks.

    The header says how many chunks and their checksum, so a partly copied or edited state is
    detected rather than misread. All bytes are ASCII: GIMP 3's parasite data is a signed
    byte array (a byte over 127 fails) and GIMP 2.10 passes parasite data as a str."""
    if not data.isascii():
        raise ValueError("state parasites must be ASCII (RoundState.to_bytes gives ASCII JSON)")
    if chunk_bytes <= 0:
        raise ValueError("chunk_bytes must be positive")
    chunks = [data[i : i + chunk_bytes] for i in range(0, len(data), chunk_bytes)] or [b""]
    header = {"format": 1, "chunks": len(chunks), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    out = {STATE_PARASITE: json.dumps(header, sort_keys=True).encode("ascii")}
    for i, chunk in enumerate(chunks, start=1):
        out[f"{STATE_PARASITE}.{i}"] = chunk
    return out


def is_state_parasite(name: str) -> bool:
    return name == STATE_PARASITE or name.startswith(STATE_PARASITE + ".")


def state_from_parasites(parasites: Mapping[str, bytes]) -> bytes | None:
    """The state bytes stored by ``state_parasites``, None when there is none.

    Raises ValueError naming what is wrong when the parasites are inconsistent."""
    head = parasites.get(STATE_PARASITE)
    if head is None:
        return None
    try:
        header = json.loads(bytes(head).decode("ascii"))
        n = int(header["chunks"])
    except Exception as exc:
        raise ValueError(f"the parasite {STATE_PARASITE!r} is not a DFIMat state header: {exc}") from exc
    parts = []
    for i in range(1, n + 1):
        name = f"{STATE_PARASITE}.{i}"
        if name not in parasites:
            raise ValueError(f"the state chunk parasite {name!r} is missing ({n} expected)")
        parts.append(bytes(parasites[name]))
    data = b"".join(parts)
    if len(data) != header.get("bytes") or hashlib.sha256(data).hexdigest() != header.get("sha256"):
        raise ValueError("the state parasites do not match their header (edited or partly copied)")
    return data


def stale_state_parasites(existing: Iterable[str], new: Iterable[str]) -> list[str]:
    """State parasites present now that the new state does not overwrite (old extra chunks)."""
    keep = set(new)
    return sorted(n for n in existing if is_state_parasite(n) and n not in keep)
