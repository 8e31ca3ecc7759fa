#!/usr/bin/env python2
# -*- coding: utf-8 -*-
"""DFIMat for GIMP 2.10 (gimpfu, Python 2): the same menu entry, inputs and round state as the
GIMP 3 plug-in.

GIMP 2.10's Python 2 cannot load ONNX Runtime, so this file only reads GIMP into plain data,
writes a request folder, runs the Python 3 worker (``python3 -m plugin.worker FOLDER``, set up
by install.py in ``dfimat_gimp2_support/worker.json``) with a timeout, and writes its answer
back in one undo group. The naming convention, the click/scribble rule and the state layout
live in the worker's Python 3 code (plugin/gimp_inputs.py), defined once for both GIMPs.

Written in the subset of Python shared by 2.7 and 3 so the tests can run it against stubs.
"""
from __future__ import division, print_function

import json
import os
import shutil
import subprocess
import tempfile
import time

from gimpfu import *  # noqa: F401,F403  (register, main, pdb, gimp, PF_* and GIMP's enums)

PROC_NAME = "plug-in-dfimat-matte"
LABEL = "Interactive Matte (DFIMat)..."
MENU = "<Image>/Filters/Matting"
SUPPORT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dfimat_gimp2_support")
#: Seconds the engine may take before the plug-in gives up (model loading included).
TIMEOUT_S = 900
#: Choice values in dialog order; the worker checks them again (gimp_inputs).
OUTPUTS = ("mask", "layer", "selection")
DEVICES = ("auto", "gpu", "cpu")
MODELS = ("small", "base")
UNNAMED = ("foreground", "background", "ignore")
STATE_PREFIX = "dfimat-state"
PARASITE_FLAGS = 3  # PERSISTENT | UNDOABLE: saved in XCF, attaching is part of the undo step
INTERPOLATE_PRECISION = 1.0
#: GIMP 2.10 image precisions -> (sample type, linear light); pixel regions hold these samples.
PRECISIONS = {100: ("u8", True), 150: ("u8", False), 200: ("u16", True), 250: ("u16", False),
              300: ("u32", True), 350: ("u32", False), 500: ("half", True), 550: ("half", False),
              600: ("float", True), 650: ("float", False), 700: ("double", True), 750: ("double", False)}
SAMPLE_BYTES = {"u8": 1, "u16": 2, "u32": 4, "half": 2, "float": 4, "double": 8}


class DFIMatError(Exception):
    """A problem the user must see; gimpfu shows the message in a GIMP message box."""


def load_config(support_dir=None):
    """worker.json written by install.py: the Python 3 to run and where the package lives."""
    support = support_dir or SUPPORT_DIR
    path = os.path.join(support, "worker.json")
    if not os.path.isfile(path):
        raise DFIMatError("DFIMat is not set up for GIMP 2.10: %s is missing. "
                          "Run `python3 install.py` from the DFIMat folder." % path)
    with open(path, "rb") as f:
        config = json.loads(f.read().decode("utf-8"))
    config.setdefault("support", support)
    return config


def read_paths(image):
    """Every path with its strokes' anchors and curve samples (image pixels)."""
    out = []
    for vectors in image.vectors:
        strokes = []
        for stroke in vectors.strokes:
            ctrl, closed = stroke.points
            ctrl = list(ctrl)
            if len(ctrl) % 6 == 0:
                anchors = [[ctrl[i + 2], ctrl[i + 3]] for i in range(0, len(ctrl), 6)]
            else:
                anchors = [[ctrl[i], ctrl[i + 1]] for i in range(0, len(ctrl) - 1, 2)]
            coords, _closed = stroke.interpolate(INTERPOLATE_PRECISION)
            samples = [[coords[i], coords[i + 1]] for i in range(0, len(coords) - 1, 2)]
            strokes.append({"anchors": anchors, "samples": samples, "closed": bool(closed)})
        out.append({"name": vectors.name, "strokes": strokes})
    return out


def read_selection(image):
    non_empty, x1, y1, x2, y2 = pdb.gimp_selection_bounds(image)
    return [bool(non_empty), x1, y1, x2, y2]


def read_state_parasites(layer):
    out = {}
    for name in layer.parasite_list():
        if name == STATE_PREFIX or name.startswith(STATE_PREFIX + "."):
            out[name] = layer.parasite_find(name).data
    return out


def target_layer(image, drawable):
    """The layer the matte is for: the chosen layer, or the layer of a chosen layer mask."""
    if drawable is None:
        raise DFIMatError("no layer is selected; select the layer of the person")
    if pdb.gimp_item_is_layer_mask(drawable):
        return pdb.gimp_layer_from_mask(drawable)
    if not pdb.gimp_item_is_layer(drawable):
        raise DFIMatError("'%s' is not a layer; select the layer of the person" % drawable.name)
    return drawable


def pixel_format(image, layer):
    """(channels, sample type, linear) of the layer's pixel-region data."""
    channels = (1 if layer.is_gray else 3) + (1 if layer.has_alpha else 0)
    sample, linear = PRECISIONS.get(pdb.gimp_image_get_precision(image), (None, False))
    if sample is None or SAMPLE_BYTES[sample] * channels != layer.bpp:
        raise DFIMatError("unsupported pixel format: %d bytes per pixel for %d channels (precision %s); "
                          "convert the image to 8-bit (Image > Precision)"
                          % (layer.bpp, channels, pdb.gimp_image_get_precision(image)))
    return channels, sample, linear


def write_request(folder, image, layer, options, models):
    """The request folder: the layer's raw pixels and everything else as JSON."""
    w, h = layer.width, layer.height
    channels, sample, linear = pixel_format(image, layer)
    rgn = layer.get_pixel_rgn(0, 0, w, h, False, False)
    with open(os.path.join(folder, "pixels.raw"), "wb") as f:
        f.write(rgn[0:w, 0:h])
    request = {
        "width": w, "height": h, "channels": channels, "sample": sample, "linear": linear,
        "pixels": "pixels.raw", "offset": list(layer.offsets), "paths": read_paths(image),
        "selection": read_selection(image), "parasites": read_state_parasites(layer),
        "options": options, "models": models,
    }
    with open(os.path.join(folder, "request.json"), "wb") as f:
        f.write(json.dumps(request).encode("utf-8"))
    return sample


def run_worker(folder, config, timeout=None):
    """Run the Python 3 worker on the folder; its answer, or a DFIMatError saying why not."""
    python = config.get("python") or "python3"
    env = dict(os.environ)
    env["PYTHONPATH"] = config["support"] + os.pathsep + env.get("PYTHONPATH", "")
    for key in ("PYTHONHOME",):  # GIMP's Python 2 settings must not leak into Python 3
        env.pop(key, None)
    cmd = [python, "-m", "plugin.worker", folder]
    log_path = os.path.join(folder, "worker.log")
    log = open(log_path, "wb")
    try:
        try:
            proc = subprocess.Popen(cmd, cwd=config["support"], env=env, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            raise DFIMatError("could not start the DFIMat engine with %s (%s); run `python3 install.py` "
                              "or fix 'python' in %s" % (python, exc, os.path.join(config["support"], "worker.json")))
        deadline = time.time() + (timeout or TIMEOUT_S)
        while proc.poll() is None:
            if time.time() > deadline:
                proc.kill()
                proc.wait()
                raise DFIMatError("the DFIMat engine did not finish within %d s; try the small model, "
                                  "the GPU, or a smaller image" % (timeout or TIMEOUT_S))
            pdb.gimp_progress_pulse()
            time.sleep(0.1)
    finally:
        log.close()
    resp_path = os.path.join(folder, "response.json")
    if not os.path.isfile(resp_path):
        with open(log_path, "rb") as f:
            tail = f.read().decode("utf-8", "replace")[-1500:]
        raise DFIMatError("the DFIMat engine stopped without an answer (exit %s):\n%s" % (proc.returncode, tail))
    with open(resp_path, "rb") as f:
        resp = json.loads(f.read().decode("utf-8"))
    if not resp.get("ok"):
        raise DFIMatError(resp.get("error") or "the DFIMat engine failed")
    return resp


def _write_gray(drawable, data, w, h):
    rgn = drawable.get_pixel_rgn(0, 0, w, h, True, True)
    rgn[0:w, 0:h] = data
    drawable.flush()
    drawable.merge_shadow(True)
    drawable.update(0, 0, w, h)


def write_result(image, layer, resp, alpha, output, k=1):
    """The matte (``k`` bytes per sample, the image's precision) and the next round's
    parasites, as one undo step."""
    w, h = layer.width, layer.height
    pdb.gimp_image_undo_group_start(image)
    try:
        if output == "mask":
            if layer.mask is not None:
                layer.remove_mask(MASK_DISCARD)
            mask = layer.create_mask(ADD_MASK_WHITE)
            layer.add_mask(mask)
            _write_gray(mask, alpha, w, h)
        elif output == "layer":
            kind = GRAY_IMAGE if image.base_type == GRAY else RGB_IMAGE
            new = gimp.Layer(image, "DFIMat matte of %s (round %d)" % (layer.name, resp["round"]), w, h, kind,
                             100, LAYER_MODE_NORMAL)
            position = pdb.gimp_image_get_item_position(image, layer)
            image.insert_layer(new, layer.parent, position)
            new.set_offsets(layer.offsets[0], layer.offsets[1])
            if kind == GRAY_IMAGE:
                _write_gray(new, alpha, w, h)
            else:
                rgb = bytearray(len(alpha) * 3)
                for c in range(3):
                    for b in range(k):
                        rgb[c * k + b::3 * k] = alpha[b::k]
                _write_gray(new, bytes(rgb), w, h)
        elif output == "selection":
            # Channels are image-sized: place the layer's matte at the layer's offsets.
            iw, ih = image.width, image.height
            ox, oy = layer.offsets
            full = bytearray(iw * ih * k)
            for y in range(max(0, oy), min(ih, oy + h)):
                x0, x1 = max(0, ox), min(iw, ox + w)
                if x1 > x0:
                    src = ((y - oy) * w + (x0 - ox)) * k
                    full[(y * iw + x0) * k:(y * iw + x1) * k] = alpha[src:src + (x1 - x0) * k]
            channel = gimp.Channel(image, "DFIMat matte", iw, ih, 100, (0, 0, 0))
            image.insert_channel(channel, None, 0)
            _write_gray(channel, bytes(full), iw, ih)
            pdb.gimp_image_select_item(image, CHANNEL_OP_REPLACE, channel)
            image.remove_channel(channel)
        else:
            raise DFIMatError("unknown output %r" % (output,))
        for name in resp.get("detach", []):
            layer.parasite_detach(str(name))
        for name in sorted(resp["parasites"]):
            layer.attach_new_parasite(str(name), PARASITE_FLAGS, str(resp["parasites"][name]))
    finally:
        pdb.gimp_image_undo_group_end(image)


def dfimat_matte(image, drawable, description="", output=0, device=0, model=0, unnamed=0, start_over=False,
                 snap_edges=True, support_dir=None, timeout=None):
    """The procedure: read, run the worker, write. Choices arrive as PF_OPTION indices."""
    config = load_config(support_dir)
    layer = target_layer(image, drawable)
    try:
        options = {"output": OUTPUTS[int(output)], "device": DEVICES[int(device)], "model": MODELS[int(model)],
                   "unnamed": UNNAMED[int(unnamed)], "start_over": bool(start_over), "text": description or "",
                   "snap_edges": bool(snap_edges)}
    except (IndexError, ValueError):
        raise DFIMatError("an option is out of range: output %r, device %r, model %r, unnamed paths %r"
                          % (output, device, model, unnamed))
    gimp.progress_init("DFIMat: matting '%s'" % layer.name)
    folder = tempfile.mkdtemp(prefix="dfimat-")
    try:
        sample = write_request(folder, image, layer, options, config.get("models"))
        resp = run_worker(folder, config, timeout)
        with open(os.path.join(folder, resp["alpha"]), "rb") as f:
            alpha = f.read()
        k = SAMPLE_BYTES[sample]
        if len(alpha) != layer.width * layer.height * k:
            raise DFIMatError("the engine returned %d matte bytes for a %dx%d layer of '%s' samples"
                              % (len(alpha), layer.width, layer.height, sample))
        write_result(image, layer, resp, alpha, options["output"], k)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    gimp.progress_update(1.0)
    gimp.displays_flush()
    gimp.message(resp["message"])
    return resp


def _plugin_main(image, drawable, description, output, device, model, unnamed, start_over, snap_edges=True):
    dfimat_matte(image, drawable, description, output, device, model, unnamed, start_over, snap_edges)


register(
    PROC_NAME,
    "Interactive multi-person matte (DFIMat)",
    "Cut out one person. Paths named 'fg ...' or '+...' mark the person, 'bg ...' or '-...' what "
    "is not; a one-anchor or very short stroke is a click, longer ones are scribbles; a "
    "rectangle selection is a box; the description is text. Run again to refine (next round).",
    "DFIMat-for-GIMP contributors", "DFIMat-for-GIMP contributors", "2026",
    LABEL, "RGB*, GRAY*",
    [
        (PF_IMAGE, "image", "Input image", None),
        (PF_DRAWABLE, "drawable", "Layer of the person", None),
        (PF_STRING, "description", "Description (optional)", ""),
        (PF_OPTION, "output", "Output", 0, ["Layer mask on the layer", "New layer holding the matte",
                                            "Selection"]),
        (PF_OPTION, "device", "Device", 0, ["Auto", "GPU", "CPU"]),
        (PF_OPTION, "model", "Model size", 0, ["Small (DFIMat-S, fast)", "Base (DFIMat, larger, slower)"]),
        (PF_OPTION, "unnamed", "Paths not named fg/bg", 0, ["Foreground", "Background", "Ignore them"]),
        (PF_TOGGLE, "start_over", "Start over (forget earlier rounds)", False),
        (PF_TOGGLE, "snap_edges", "Snap the outline to the picture's edges", True),
    ],
    [],
    _plugin_main,
    menu=MENU,
)

if __name__ == "__main__":
    main()
