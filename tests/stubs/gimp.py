"""A small stand-in for GIMP 2.10's ``gimp`` Python module (pygimp), for tests only.

It models the documented behaviour the DFIMat plug-in relies on: images with layers, paths
(``gimp.Vectors`` with Bezier strokes whose ``points`` are (in-handle, anchor, out-handle)
triples and whose ``interpolate`` samples the curve), the selection and its bounds, pixel
regions addressed as ``rgn[x0:x1, y0:y1]`` holding raw bytes, layer masks (one per layer),
parasites with flags, and undo: every change outside an undo group is its own undo step, all
changes inside ``gimp_image_undo_group_start/end`` are one step. Only straight Bezier segments
are interpolated (enough for tests; the plug-in does not depend on the sampling method).
"""

from __future__ import annotations

import math

import numpy as np

PARASITE_PERSISTENT = 1
PARASITE_UNDOABLE = 2


class error(RuntimeError):  # noqa: N801 - pygimp's name
    pass


class _Undo:
    def __init__(self) -> None:
        self.steps: list[list[str]] = []
        self.depth = 0
        self.group: list[str] | None = None

    def push(self, what: str) -> None:
        if self.depth:
            self.group.append(what)
        else:
            self.steps.append([what])


class Parasite:
    def __init__(self, name: str, flags: int, data: str) -> None:
        if not isinstance(data, str):
            raise TypeError("pygimp parasite data is a str")
        self.name, self.flags, self.data = name, flags, data

    def is_persistent(self) -> bool:
        return bool(self.flags & PARASITE_PERSISTENT)


class PixelRgn:
    """Raw bytes of a drawable's rectangle; writes go to the shadow when asked (as in GIMP)."""

    def __init__(self, drawable: Drawable, x: int, y: int, w: int, h: int, dirty: bool, shadow: bool) -> None:
        self.drawable, self.x, self.y, self.w, self.h = drawable, x, y, w, h
        self.dirty, self.shadow = dirty, shadow

    def _box(self, key):
        xs, ys = key
        return xs.start, xs.stop, ys.start, ys.stop

    def __getitem__(self, key) -> bytes:
        x0, x1, y0, y1 = self._box(key)
        src = self.drawable.shadow_pixels if self.shadow else self.drawable.pixels
        return src[y0:y1, x0:x1].tobytes()

    def __setitem__(self, key, data) -> None:
        if not self.dirty:
            raise error("pixel region is not dirty (read-only)")
        if not isinstance(data, bytes):
            raise TypeError("pixel data must be a (byte) string")
        x0, x1, y0, y1 = self._box(key)
        d = self.drawable
        arr = np.frombuffer(data, np.uint8).reshape(y1 - y0, x1 - x0, d.bpp)
        if self.shadow:
            if d.shadow_pixels is None:
                d.shadow_pixels = d.pixels.copy()
            d.shadow_pixels[y0:y1, x0:x1] = arr
        else:
            d.pixels[y0:y1, x0:x1] = arr


class Item:
    def __init__(self, image: Image | None, name: str) -> None:
        self.image, self.name = image, name
        self.parasites: dict[str, Parasite] = {}

    def _undo(self, what: str) -> None:
        if self.image is not None:
            self.image.undo.push(what)

    def attach_new_parasite(self, name: str, flags: int, data: str) -> None:
        self.parasites[name] = Parasite(name, flags, data)
        if flags & PARASITE_UNDOABLE:
            self._undo(f"attach parasite {name}")

    def parasite_find(self, name: str) -> Parasite | None:
        return self.parasites.get(name)

    def parasite_list(self) -> tuple[str, ...]:
        return tuple(self.parasites)

    def parasite_detach(self, name: str) -> None:
        p = self.parasites.pop(name, None)
        if p is None:
            raise error(f"could not detach parasite '{name}'")
        if p.flags & PARASITE_UNDOABLE:
            self._undo(f"detach parasite {name}")


class Drawable(Item):
    def __init__(self, image, name, width, height, bpp, is_gray, has_alpha) -> None:
        super().__init__(image, name)
        self.width, self.height, self.bpp = width, height, bpp
        self.is_gray, self.has_alpha = is_gray, has_alpha
        self.pixels = np.zeros((height, width, bpp), np.uint8)
        self.shadow_pixels: np.ndarray | None = None
        self.offsets = (0, 0)
        self.updates = 0

    def get_pixel_rgn(self, x, y, w, h, dirty=True, shadow=False) -> PixelRgn:
        return PixelRgn(self, x, y, w, h, dirty, shadow)

    def flush(self) -> None:
        pass

    def merge_shadow(self, undo: bool = True) -> None:
        if self.shadow_pixels is None:
            raise error("no shadow to merge")
        self.pixels = self.shadow_pixels
        self.shadow_pixels = None
        if undo:
            self._undo(f"pixels of {self.name}")

    def update(self, x, y, w, h) -> None:
        self.updates += 1


#: Bytes per sample of GIMP 2.10's precisions (U8_LINEAR=100 ... DOUBLE_GAMMA=750).
PRECISION_BYTES = {100: 1, 150: 1, 200: 2, 250: 2, 300: 4, 350: 4, 500: 2, 550: 2, 600: 4, 650: 4, 700: 8, 750: 8}


def _sample_bytes(image) -> int:
    return PRECISION_BYTES[image.precision] if image is not None else 1


class Channel(Drawable):
    def __init__(self, image, name, width, height, opacity, color) -> None:
        super().__init__(image, name, width, height, _sample_bytes(image), True, False)
        self.opacity, self.color = opacity, color
        self.is_layer_mask = False


class Layer(Drawable):
    def __init__(self, image, name, width, height, type=0, opacity=100.0, mode=28) -> None:  # noqa: A002
        gray = type in (2, 3)
        alpha = type in (1, 3)
        k = _sample_bytes(image)
        super().__init__(image, name, width, height, ((1 if gray else 3) + alpha) * k, gray, alpha)
        self.type, self.opacity, self.mode = type, opacity, mode
        self.mask: Channel | None = None
        self.parent = None

    def create_mask(self, mask_type: int) -> Channel:
        m = Channel(self.image, f"{self.name} mask", self.width, self.height, 100, (0, 0, 0))
        m.is_layer_mask = True
        m.layer = self
        m.pixels[:] = 255 if mask_type == 0 else 0  # ADD_MASK_WHITE = 0, ADD_MASK_BLACK = 1 (u8 view)
        return m

    def add_mask(self, mask: Channel) -> None:
        if self.mask is not None:
            raise error("Unable to add a layer mask since the layer already has one.")
        self.mask = mask
        self._undo(f"add mask to {self.name}")

    def remove_mask(self, mode: int) -> None:
        if self.mask is None:
            raise error("layer has no mask")
        self.mask = None
        self._undo(f"remove mask from {self.name}")

    def set_offsets(self, x: int, y: int) -> None:
        self.offsets = (x, y)
        self._undo(f"move {self.name}")


class VectorsBezierStroke:
    def __init__(self, vectors: Vectors, anchors, closed: bool = False) -> None:
        self.vectors, self.anchors, self.closed = vectors, [tuple(map(float, a)) for a in anchors], closed

    @property
    def points(self):
        flat = []
        for x, y in self.anchors:  # straight segments: handles sit on their anchor
            flat += [x, y, x, y, x, y]
        return (flat, self.closed)

    def interpolate(self, precision: float):
        pts = self.anchors + ([self.anchors[0]] if self.closed and len(self.anchors) > 1 else [])
        out = [pts[0]]
        for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False):
            n = max(1, int(math.ceil(math.hypot(x1 - x0, y1 - y0) / max(precision, 0.1))))
            out += [(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n) for i in range(1, n + 1)]
        return ([c for p in out for c in p], self.closed)

    def get_length(self, precision: float) -> float:
        pts = self.interpolate(precision)[0]
        xy = list(zip(pts[0::2], pts[1::2], strict=True))
        return sum(math.dist(a, b) for a, b in zip(xy, xy[1:], strict=False))


class Vectors(Item):
    def __init__(self, image: Image, name: str) -> None:
        super().__init__(image, name)
        self.strokes: list[VectorsBezierStroke] = []

    def add_stroke(self, anchors, closed: bool = False) -> VectorsBezierStroke:
        s = VectorsBezierStroke(self, anchors, closed)
        self.strokes.append(s)
        return s


class Image:
    def __init__(self, width: int, height: int, base_type: int = 0, precision: int = 150) -> None:
        self.width, self.height, self.base_type, self.precision = width, height, base_type, precision
        self.layers: list[Layer] = []
        self.channels: list[Channel] = []
        self.vectors: list[Vectors] = []
        self.selection = np.zeros((height, width), np.uint8)
        self.undo = _Undo()
        self.parasites: dict[str, Parasite] = {}

    def insert_layer(self, layer: Layer, parent=None, position: int = -1) -> None:
        layer.image = self
        self.layers.insert(position if position >= 0 else len(self.layers), layer)
        self.undo.push(f"add layer {layer.name}")

    def insert_channel(self, channel: Channel, parent=None, position: int = -1) -> None:
        self.channels.insert(position if position >= 0 else len(self.channels), channel)
        self.undo.push(f"add channel {channel.name}")

    def remove_channel(self, channel: Channel) -> None:
        self.channels.remove(channel)
        self.undo.push(f"remove channel {channel.name}")

    def add_vectors(self, name: str) -> Vectors:
        v = Vectors(self, name)
        self.vectors.append(v)
        return v


def _noop(*args, **kwargs):
    return None


progress_calls: list[tuple] = []
messages: list[str] = []


def progress_init(text: str = "") -> None:
    progress_calls.append(("init", text))


def progress_update(fraction: float) -> None:
    progress_calls.append(("update", fraction))


def message(text: str) -> None:
    messages.append(text)


displays_flush = _noop


class _PDB:
    """The PDB procedures the plug-in calls, with GIMP 2.10's documented return values."""

    def gimp_selection_bounds(self, image: Image):
        ys, xs = np.nonzero(image.selection)
        if len(xs) == 0:
            return (0, 0, 0, image.width, image.height)
        return (1, int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)

    def gimp_image_select_rectangle(self, image: Image, op: int, x, y, w, h) -> None:
        image.selection[:] = 0
        image.selection[y:y + h, x:x + w] = 255
        image.undo.push("select rectangle")

    def gimp_image_select_item(self, image: Image, op: int, item: Drawable) -> None:
        ox, oy = item.offsets
        sel = np.zeros_like(image.selection)
        h, w = item.height, item.width
        sel[oy:oy + h, ox:ox + w] = item.pixels[..., -1]  # the top byte (u8 view of the channel)
        image.selection = sel
        image.undo.push("select item")

    def gimp_image_undo_group_start(self, image: Image) -> None:
        if image.undo.depth == 0:
            image.undo.group = []
        image.undo.depth += 1

    def gimp_image_undo_group_end(self, image: Image) -> None:
        if image.undo.depth == 0:
            raise error("undo group end without start")
        image.undo.depth -= 1
        if image.undo.depth == 0:
            if image.undo.group:
                image.undo.steps.append(image.undo.group)
            image.undo.group = None

    def gimp_image_get_precision(self, image: Image) -> int:
        return image.precision

    def gimp_image_get_item_position(self, image: Image, item: Layer) -> int:
        return image.layers.index(item)

    def gimp_item_is_layer_mask(self, item) -> bool:
        return bool(getattr(item, "is_layer_mask", False))

    def gimp_item_is_layer(self, item) -> bool:
        return isinstance(item, Layer)

    def gimp_layer_from_mask(self, mask: Channel) -> Layer:
        return mask.layer

    def gimp_progress_pulse(self) -> None:
        progress_calls.append(("pulse",))


pdb = _PDB()
