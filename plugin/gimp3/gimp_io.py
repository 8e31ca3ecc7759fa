"""GIMP 3 objects to plain data and back; the only module here that touches GIMP's pixels.

Reading never changes the image. Writing happens only after the whole job has succeeded, in
one undo group, so a failed run leaves the image as it was and a good one is one undo step.
"""

from __future__ import annotations

import os

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
gi.require_version("Babl", "0.1")
import numpy as np  # noqa: E402
from gi.repository import Babl, Gegl, Gimp  # noqa: E402

from ..gimp_inputs import (  # noqa: E402
    STATE_PARASITE_FLAGS,
    PathData,
    StrokeData,
    anchors_from_control_points,
    is_state_parasite,
    split_flat,
)
from ..worker import Outcome  # noqa: E402

#: Curve sampling precision for stroke_interpolate (GIMP's unit: smaller is finer).
INTERPOLATE_PRECISION = 1.0


def target_layer(drawables: list) -> Gimp.Layer:
    """The layer the matte is for: the chosen layer, or the layer of a chosen layer mask."""
    if not drawables:
        raise ValueError("no layer is selected; select the layer of the person")
    if len(drawables) > 1:
        raise ValueError("several layers are selected; select only the layer of the person")
    d = drawables[0]
    if isinstance(d, Gimp.LayerMask):
        return Gimp.Layer.from_mask(d)
    if not isinstance(d, Gimp.Layer):
        raise ValueError(f"'{d.get_name()}' is not a layer; select the layer of the person")
    return d


def read_pixels(layer: Gimp.Layer) -> np.ndarray:
    """The layer's own pixels (not its mask) as (H, W, 3) uint8, whatever the image precision."""
    w, h = layer.get_width(), layer.get_height()
    data = layer.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "R'G'B' u8", Gegl.AbyssPolicy.CLAMP)
    return np.frombuffer(bytes(data), np.uint8).reshape(h, w, 3).copy()


def read_paths(image: Gimp.Image) -> list[PathData]:
    """Every path of the image with its strokes' anchors and curve samples, in image pixels."""
    out = []
    for path in image.get_paths():
        strokes = []
        for sid in path.get_strokes():
            _kind, ctrl, closed = path.stroke_get_points(sid)
            samples, _closed = path.stroke_interpolate(sid, INTERPOLATE_PRECISION)
            strokes.append(
                StrokeData(anchors_from_control_points(list(ctrl)), split_flat(list(samples or [])), bool(closed))
            )
        out.append(PathData(path.get_name(), tuple(strokes)))
    return out


def read_selection(image: Gimp.Image) -> tuple[bool, float, float, float, float]:
    """(non_empty, x1, y1, x2, y2) with x2/y2 exclusive, as Gimp.Selection.bounds gives them."""
    _ok, non_empty, x1, y1, x2, y2 = Gimp.Selection.bounds(image)
    return (bool(non_empty), float(x1), float(y1), float(x2), float(y2))


def read_state_parasites(layer: Gimp.Layer) -> dict[str, bytes]:
    """The layer's DFIMat state parasites; their data is a signed byte list in GIMP 3."""
    out = {}
    for name in layer.get_parasite_list():
        if is_state_parasite(name):
            p = layer.get_parasite(name)
            out[name] = np.array(p.get_data(), dtype=np.int8).tobytes()
    return out


def layer_offset(layer: Gimp.Layer) -> tuple[float, float]:
    res = layer.get_offsets()
    # PyGObject gives (ok, x, y) or (x, y) depending on the binding's annotations.
    x, y = res[-2], res[-1]
    return (float(x), float(y))


#: When set, every change made to an image is logged to this file (troubleshooting, and how
#: the real-GIMP tests check that a run is one undo group).
TRACE_ENV = "DFIMAT_TRACE"


def _trace(event: str) -> None:
    path = os.environ.get(TRACE_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(event + "\n")


def _write(drawable: Gimp.Drawable, arr: np.ndarray, fmt: str) -> None:
    h, w = arr.shape
    buf = drawable.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), fmt, np.ascontiguousarray(arr).tobytes())
    buf.flush()
    drawable.update(0, 0, w, h)
    _trace(f"write pixels {drawable.get_name()}")


def _gray_u8_like(drawable: Gimp.Drawable) -> str:
    """An 8-bit gray Babl format with the drawable's own tone curve ("Y", "Y'" or "Y~").

    The matte is coverage: writing it with the drawable's TRC stores the numbers unchanged in
    any precision (masks are linear "Y" even in perceptual images; a linear image's layers are
    linear), where a TRC mismatch would gamma-shift every value."""
    component = Babl.get_name(drawable.get_format()).split(" ")[0]
    trc = "'" if "'" in component else "~" if "~" in component else ""
    return f"Y{trc} u8"


def write_outcome(image: Gimp.Image, layer: Gimp.Layer, outcome: Outcome, output: str) -> None:
    """The matte and the next round's parasites, as one undo step."""
    alpha = outcome.alpha
    h, w = alpha.shape
    image.undo_group_start()
    _trace("undo group start")
    try:
        if output == "mask":
            if layer.get_mask() is not None:
                layer.remove_mask(Gimp.MaskApplyMode.DISCARD)
                _trace("remove mask")
            mask = layer.create_mask(Gimp.AddMaskType.WHITE)
            layer.add_mask(mask)
            _trace("add mask")
            _write(mask, alpha, _gray_u8_like(mask))
        elif output == "layer":
            gray = image.get_base_type() == Gimp.ImageBaseType.GRAY
            new = Gimp.Layer.new(
                image,
                f"DFIMat matte of {layer.get_name()} (round {outcome.round})",
                w,
                h,
                Gimp.ImageType.GRAY_IMAGE if gray else Gimp.ImageType.RGB_IMAGE,
                100.0,
                Gimp.LayerMode.NORMAL,
            )
            image.insert_layer(new, layer.get_parent(), image.get_item_position(layer))
            ox, oy = layer_offset(layer)
            new.set_offsets(int(ox), int(oy))
            _trace("add layer")
            _write(new, alpha, _gray_u8_like(new))
        elif output == "selection":
            iw, ih = image.get_width(), image.get_height()
            full = np.zeros((ih, iw), np.uint8)
            ox, oy = (int(v) for v in layer_offset(layer))
            x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + w, iw), min(oy + h, ih)
            if x1 > x0 and y1 > y0:
                full[y0:y1, x0:x1] = alpha[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
            channel = Gimp.Channel.new(image, "DFIMat matte", iw, ih, 100.0, Gegl.Color.new("black"))
            image.insert_channel(channel, None, 0)
            _trace("add channel")
            _write(channel, full, _gray_u8_like(channel))
            image.select_item(Gimp.ChannelOps.REPLACE, channel)
            image.remove_channel(channel)
            _trace("select; remove channel")
        else:
            raise ValueError(f"unknown output {output!r}")
        for name in outcome.detach:
            layer.detach_parasite(name)
            _trace(f"detach parasite {name}")
        for name, data in outcome.parasites.items():
            layer.attach_parasite(Gimp.Parasite.new(name, STATE_PARASITE_FLAGS, np.frombuffer(data, np.int8).tolist()))
            _trace(f"attach parasite {name}")
    finally:
        image.undo_group_end()
        _trace("undo group end")
