"""Helpers of the real-GIMP-3 tests: the Debian 13 root, install.py run inside it, a synthetic
multi-person picture, and the batch scripts that drive gimp-console-3.0.

The root comes from shared/gimp3/make-root.sh (cached at ~/.cache/gimp3-root); when it cannot
be built the tests fail with the script's own message. Each batch script does many checks in
one GIMP launch and writes what it saw (JSON, raw mask bytes) to a folder the host reads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Inside the root: the work folder shared with the host, the source copy, the models.
WORK_IN_ROOT = "/tmp/dfimat-gimp3"
SRC_IN_ROOT = "/opt/dfimat-src"
MODELS_IN_ROOT = "/opt/dfimat-models"
PROFILE_IN_ROOT = "/root/.config/GIMP/3.0"
TRACE_IN_ROOT = WORK_IN_ROOT + "/trace.log"


class GimpRootError(RuntimeError):
    pass


def shared_gimp3_dir() -> Path:
    """shared/gimp3 beside the repository (../shared), else /work/shared."""
    for cand in (ROOT.parent / "shared" / "gimp3", Path("/work/shared/gimp3")):
        if (cand / "make-root.sh").is_file():
            return cand
    raise GimpRootError(f"shared/gimp3/make-root.sh not found in {ROOT.parent / 'shared'} or /work/shared")


@dataclass
class GimpRoot:
    path: Path
    scripts: Path

    @property
    def work(self) -> Path:
        return self.path / WORK_IN_ROOT.lstrip("/")

    def run(self, *cmd: str, timeout: int = 900, env: str = "") -> subprocess.CompletedProcess:
        full = [str(self.scripts / "in-root.sh"), str(self.path), *cmd]
        return subprocess.run(full, capture_output=True, text=True, timeout=timeout,
                              env=dict(os.environ, IN_ROOT_ENV=env))

    def batch(self, script: str, timeout: int = 600) -> subprocess.CompletedProcess:
        """Run a Python batch script (a file in the work folder) in gimp-console-3.0, with the
        plug-in logging every change it makes to an image (DFIMAT_TRACE) to trace.log."""
        code = f'exec(open("{WORK_IN_ROOT}/{script}").read())'
        return self.run("gimp-console-3.0", "-i", "--batch-interpreter=python-fu-eval", "-b", code, "--quit",
                        timeout=timeout, env=f"DFIMAT_TRACE={TRACE_IN_ROOT}")


def make_root() -> GimpRoot:
    scripts = shared_gimp3_dir()
    res = subprocess.run([str(scripts / "make-root.sh")], capture_output=True, text=True, timeout=1800)
    if res.returncode != 0:
        raise GimpRootError(f"make-root.sh failed (exit {res.returncode}): {(res.stderr or res.stdout)[-2000:]}")
    path = Path(res.stdout.strip().splitlines()[-1])
    if not (path / ".ready").is_file():
        raise GimpRootError(f"make-root.sh printed {path}, which is not a finished root")
    return GimpRoot(path, scripts)


def install_into_root(root: GimpRoot, models_root: Path) -> subprocess.CompletedProcess:
    """Copy the checkout's plug-in and a models folder (``small/`` and the shared ``text/``, as
    the repository ships them) in, then run install.py there (packages into a venv beside the
    plug-in, made with the root's python3 and --system-site-packages)."""
    src = root.path / SRC_IN_ROOT.lstrip("/")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    shutil.copy2(ROOT / "install.py", src / "install.py")
    shutil.copy2(ROOT / "requirements.txt", src / "requirements.txt")
    shutil.copytree(ROOT / "plugin", src / "plugin", ignore=shutil.ignore_patterns("__pycache__"))
    models = root.path / MODELS_IN_ROOT.lstrip("/")
    shutil.rmtree(models, ignore_errors=True)
    shutil.copytree(models_root, models)
    (root.path / PROFILE_IN_ROOT.lstrip("/") / "plug-ins").mkdir(parents=True, exist_ok=True)
    return root.run("python3", f"{SRC_IN_ROOT}/install.py", "--gimp-dir", PROFILE_IN_ROOT,
                    "--models", MODELS_IN_ROOT)


def people_picture(width: int = 160, height: int = 120) -> np.ndarray:
    """Three simple 'people' (head + body) in different colours on a graded background."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = np.stack([60 + 80 * xx / width, 90 + 60 * yy / height, np.full_like(xx, 140)], axis=2)
    people = [(50, (200, 40, 40)), (100, (40, 160, 60)), (135, (230, 200, 60))]
    for cx, colour in people:
        head = (xx - cx) ** 2 + (yy - 28) ** 2 < 11**2
        body = (np.abs(xx - cx) < 16) & (yy > 40) & (yy < 112)
        img[head | body] = colour
    return np.clip(img, 0, 255).astype(np.uint8)


def gray_of(picture: np.ndarray) -> np.ndarray:
    """The grayscale version of the picture the grayscale-image run uses."""
    return np.ascontiguousarray(picture.mean(axis=2).round().astype(np.uint8))


#: The user's inputs, in image pixels: what the batch script draws and the tests expect back.
FG_CLICK = (50.0, 60.0)
BG_SCRIBBLE = ((100.0, 45.0), (104.0, 100.0))
SELECTION = (25, 8, 50, 108)  # x, y, w, h -> box (25, 8, 75, 116)
ROUND2_BG_CLICK = (70.0, 90.0)

COMMON = r'''
import json, os
import gi
gi.require_version("Gimp", "3.0"); gi.require_version("Gegl", "0.4"); gi.require_version("Babl", "0.1")
from gi.repository import Gimp, Gegl, Gio, Babl
import numpy as np
W = "%(work)s"
P = json.load(open(W + "/params.json"))
OUT = {}
PDB = Gimp.get_pdb()
RUNS = [P["first_run"]]

def new_image(name="people", gray=False, precision=None):
    w, h = P["width"], P["height"]
    base = Gimp.ImageBaseType.GRAY if gray else Gimp.ImageBaseType.RGB
    if precision is None:
        img = Gimp.Image.new(w, h, base)
    else:
        img = Gimp.Image.new_with_precision(w, h, base, precision)
    kind = Gimp.ImageType.GRAY_IMAGE if gray else Gimp.ImageType.RGB_IMAGE
    layer = Gimp.Layer.new(img, name, w, h, kind, 100, Gimp.LayerMode.NORMAL)
    img.insert_layer(layer, None, 0)
    raw = open(W + ("/gray.raw" if gray else "/image.raw"), "rb").read()
    buf = layer.get_buffer()
    buf.set(Gegl.Rectangle.new(0, 0, w, h), "Y' u8" if gray else "R'G'B' u8", raw)
    buf.flush()
    return img, layer

def add_path(img, name, points):
    p = Gimp.Path.new(img, name)
    img.insert_path(p, None, 0)
    s = p.bezier_stroke_new_moveto(*points[0])
    for x, y in points[1:]:
        p.bezier_stroke_lineto(s, x, y)
    return p

def run(img, layer, **props):
    proc = PDB.lookup_procedure("plug-in-dfimat-matte")
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    for k, v in props.items():
        cfg.set_property(k, v)
    RUNS[0] += 1
    with open(W + "/trace.log", "a") as f:
        f.write("== run %%d\n" %% RUNS[0])
    img.clean_all()
    res = proc.run(cfg)
    status = res.index(0)
    out = {"ok": status == Gimp.PDBStatusType.SUCCESS, "status": str(status), "run": RUNS[0]}
    if out["ok"]:
        out["round"], out["message"] = res.index(1), res.index(2)
    else:
        out["error"] = PDB.get_last_error()  # before any other PDB call replaces it
    out["dirty"] = img.is_dirty()
    return out

def gray(drawable, fmt=None):
    w, h = drawable.get_width(), drawable.get_height()
    data = drawable.get_buffer().get(Gegl.Rectangle.new(0, 0, w, h), 1.0, fmt or "Y u8", Gegl.AbyssPolicy.CLAMP)
    return bytes(data)

def parasites(item):
    out = {}
    for name in item.get_parasite_list():
        p = item.get_parasite(name)
        out[name] = {"flags": p.get_flags(), "data": np.array(p.get_data(), np.int8).tobytes().decode("ascii")}
    return out

def save(name, data):
    open(W + "/" + name, "wb").write(data)
'''

SESSION_A = r'''
# Errors first: each must leave its image untouched (no mask, no parasites).
img, layer = new_image()
OUT["no_inputs"] = run(img, layer)
outside = add_path(img, "fg outside", [(10, 10), (P["width"] + 40, 10)])
OUT["outside"] = run(img, layer)
img.remove_path(outside)
add_path(img, "fg", [P["fg_click"]])
OUT["missing_model"] = run(img, layer, model="base")
OUT["after_errors"] = {"mask": layer.get_mask() is not None, "parasites": list(layer.get_parasite_list())}
img.delete()

# Rounds 1 and 2 on the main picture.
img, layer = new_image()
add_path(img, "fg person", [P["fg_click"]])
add_path(img, "bg other", P["bg_scribble"])
img.select_rectangle(Gimp.ChannelOps.REPLACE, *P["selection"])
OUT["round1"] = run(img, layer)
save("mask1.raw", gray(layer.get_mask()))
OUT["parasites1"] = parasites(layer)
add_path(img, "-shadow", [P["round2_bg_click"]])
OUT["round2"] = run(img, layer)
save("mask2.raw", gray(layer.get_mask()))
OUT["parasites2"] = parasites(layer)
OUT["layers"] = [l.get_name() for l in img.get_layers()]
Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, img, Gio.File.new_for_path(W + "/people.xcf"), None)
img.delete()

# The other outputs, round 1 each on fresh copies: a new layer, the selection.
img, layer = new_image()
add_path(img, "fg person", [P["fg_click"]])
add_path(img, "bg other", P["bg_scribble"])
img.select_rectangle(Gimp.ChannelOps.REPLACE, *P["selection"])
OUT["as_layer"] = run(img, layer, output="layer")
top = img.get_layers()[0]
OUT["as_layer_names"] = [l.get_name() for l in img.get_layers()]
save("layer1.raw", gray(top, "Y' u8"))
OUT["as_selection"] = run(img, layer, output="selection", **{"start-over": True})
save("selection1.raw", gray(img.get_selection()))
OUT["as_selection_mask"] = layer.get_mask() is not None
img.delete()

# Round 1 again with the outline left where the network put it (the "Snap to edges" option off).
img, layer = new_image()
add_path(img, "fg person", [P["fg_click"]])
add_path(img, "bg other", P["bg_scribble"])
img.select_rectangle(Gimp.ChannelOps.REPLACE, *P["selection"])
OUT["nosnap"] = run(img, layer, **{"snap-edges": False})
save("nosnap1.raw", gray(layer.get_mask()))
img.delete()

# Any precision and grayscale: a 16-bit linear RGB copy and a grayscale picture, round 1 each.
for key, kwargs in (("u16_linear", {"precision": Gimp.Precision.U16_LINEAR}), ("gray", {"gray": True})):
    img, layer = new_image(**kwargs)
    add_path(img, "fg person", [P["fg_click"]])
    add_path(img, "bg other", P["bg_scribble"])
    img.select_rectangle(Gimp.ChannelOps.REPLACE, *P["selection"])
    OUT[key] = run(img, layer)
    OUT[key + "_mask_format"] = Babl.get_name(layer.get_mask().get_format())
    save(key + ".raw", gray(layer.get_mask()))
    img.delete()
# The plug-in's GIMP reader on the real API (no matte): curves, closed strokes, clicks,
# selections of any shape, layer offsets, pixels, a layer mask as the chosen drawable.
import sys
sys.path.insert(0, "%(plugin_dir)s")
from plugin.gimp3 import gimp_io
img, layer = new_image()
p = Gimp.Path.new(img, "fg curve")
img.insert_path(p, None, 0)
s = p.bezier_stroke_new_moveto(20, 100)
p.bezier_stroke_cubicto(s, 20, 20, 140, 20, 140, 100)
p.bezier_stroke_new_moveto(60, 60)
p.bezier_stroke_new_ellipse(100, 60, 10, 6, 0)
OUT["io_paths"] = [{"name": d.name, "strokes": [{"anchors": st.anchors, "samples": st.samples, "closed": st.closed}
                                                for st in d.strokes]} for d in gimp_io.read_paths(img)]
Gimp.Selection.none(img)
OUT["io_sel_none"] = gimp_io.read_selection(img)
img.select_ellipse(Gimp.ChannelOps.REPLACE, 10, 20, 30, 40)
OUT["io_sel_ellipse"] = gimp_io.read_selection(img)
OUT["io_pixels_equal"] = gimp_io.read_pixels(layer).tobytes() == open(W + "/image.raw", "rb").read()
layer.set_offsets(5, 7)
OUT["io_offset"] = gimp_io.layer_offset(layer)
mask = layer.create_mask(Gimp.AddMaskType.WHITE)
layer.add_mask(mask)
OUT["io_target_from_mask"] = gimp_io.target_layer([layer.get_mask()]).get_name()
img.delete()

# A description alone.
img, layer = new_image()
OUT["text_only"] = run(img, layer, description="the person in red on the left")
img.delete()
json.dump(OUT, open(W + "/session_a.json", "w"))
'''

SESSION_B = r'''
# A new GIMP process: the XCF brings the layer, its mask and its state back; round 3 continues.
img = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(W + "/people.xcf"))
layer = [l for l in img.get_layers() if l.get_name() == "people"][0]
OUT["parasites_loaded"] = parasites(layer)
OUT["mask_loaded"] = layer.get_mask() is not None
save("mask_loaded.raw", gray(layer.get_mask()))
OUT["round3"] = run(img, layer)

# Each layer keeps its own state: a new layer with the same pixels starts at round 1.
other = Gimp.Layer.new(img, "second person", P["width"], P["height"], Gimp.ImageType.RGB_IMAGE, 100,
                       Gimp.LayerMode.NORMAL)
img.insert_layer(other, None, 0)
buf = other.get_buffer()
buf.set(Gegl.Rectangle.new(0, 0, P["width"], P["height"]), "R'G'B' u8", open(W + "/image.raw", "rb").read())
buf.flush()
OUT["other_layer"] = run(img, other)
OUT["first_layer_after_other"] = parasites(layer)

# Edited pixels: the stored state no longer fits, so round 1 again, and the message says so.
buf = layer.get_buffer()
buf.set(Gegl.Rectangle.new(0, 0, 20, 20), "R'G'B' u8", bytes([255]) * (20 * 20 * 3))
buf.flush()
OUT["edited"] = run(img, layer)
img.delete()
json.dump(OUT, open(W + "/session_b.json", "w"))
'''


def read_trace(root: GimpRoot) -> dict[int, list[str]]:
    """The plug-in's changes to images, by run number (as numbered by the batch scripts)."""
    runs: dict[int, list[str]] = {}
    current = None
    for line in (root.work / "trace.log").read_text().splitlines():
        if line.startswith("== run "):
            current = int(line.split()[-1])
            runs[current] = []
        elif current is not None:
            runs[current].append(line)
    return runs


def write_session(root: GimpRoot, picture: np.ndarray) -> None:
    """The work folder: the picture, the inputs and both batch scripts."""
    shutil.rmtree(root.work, ignore_errors=True)
    root.work.mkdir(parents=True)
    h, w = picture.shape[:2]
    (root.work / "image.raw").write_bytes(np.ascontiguousarray(picture).tobytes())
    (root.work / "gray.raw").write_bytes(gray_of(picture).tobytes())
    params = {"width": w, "height": h, "fg_click": FG_CLICK, "bg_scribble": BG_SCRIBBLE,
              "selection": SELECTION, "round2_bg_click": ROUND2_BG_CLICK}
    (root.work / "params.json").write_text(json.dumps(params))
    common = COMMON % {"work": WORK_IN_ROOT}
    session_a = SESSION_A.replace("%(plugin_dir)s", f"{PROFILE_IN_ROOT}/plug-ins/dfimat")
    (root.work / "session_a.py").write_text(common.replace('P["first_run"]', "0") + session_a)
    (root.work / "session_b.py").write_text(common.replace('P["first_run"]', "100") + SESSION_B)


# ---- the interactive dialog, on a virtual X display ------------------------------------------

X_TOOLS = ("xvfb", "xdotool")

DIALOG_BATCH = r'''
img, layer = new_image()
add_path(img, "fg person", [P["fg_click"]])
proc = PDB.lookup_procedure("plug-in-dfimat-matte")
for key in ("dialog1", "dialog2"):
    cfg = proc.create_config()
    cfg.set_property("run-mode", Gimp.RunMode.INTERACTIVE)
    cfg.set_property("image", img)
    cfg.set_core_object_array("drawables", [layer])
    res = proc.run(cfg)
    OUT[key] = {"status": str(res.index(0)), "ok": res.index(0) == Gimp.PDBStatusType.SUCCESS,
                "round": res.index(1) if res.length() > 1 else None,
                "message": res.index(2) if res.length() > 2 else None, "mask": layer.get_mask() is not None}
    OUT[key + "_parasites"] = parasites(layer)
img.delete()
json.dump(OUT, open(W + "/dialog.json", "w"))
'''

# A user, twice. First dialog: replace the description (GIMP shows the last values used), tick
# "Start over", OK (Alt+O). Second dialog: just OK, which must continue at round 2 because
# "Start over" does not stick. (Mouse clicks on the buttons do not register without a window
# manager; the keyboard does.)
DIALOG_DRIVER = r'''
Xvfb :99 -screen 0 1280x1024x24 >/dev/null 2>&1 &
XV=$!
export DISPLAY=:99
sleep 1
( WID=$(timeout 60 xdotool search --sync --name "Interactive Matte" | head -1)
  sleep 2
  xdotool mousemove --window "$WID" 250 82 click 1; sleep 0.5
  xdotool key ctrl+a; xdotool type --delay 20 "the man in red"; sleep 0.5
  xdotool mousemove --window "$WID" 15 261 click 1; sleep 0.5
  xdotool key alt+o
  while xdotool search --name "Interactive Matte" >/dev/null 2>&1; do sleep 0.5; done
  WID=$(timeout 60 xdotool search --sync --name "Interactive Matte" | head -1)
  sleep 2
  xdotool mousemove --window "$WID" 250 82 click 1; sleep 0.5
  xdotool key alt+o ) &
timeout 150 gimp-console-3.0 -i --batch-interpreter=python-fu-eval -b 'exec(open("%(work)s/dialog.py").read())' --quit
RC=$?
kill $XV
exit $RC
'''


def run_dialog(root: GimpRoot) -> subprocess.CompletedProcess:
    """Install Xvfb/xdotool into the root when missing, then drive the dialog like a user."""
    if not (root.path / "usr/bin/xdotool").exists() or not (root.path / "usr/bin/Xvfb").exists():
        res = root.run("sh", "-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
                       f"--no-install-recommends {' '.join(X_TOOLS)} >/dev/null", timeout=600)
        if res.returncode != 0:
            raise GimpRootError(f"could not install {X_TOOLS} into the root: {res.stderr[-1500:]}")
    common = COMMON % {"work": WORK_IN_ROOT}
    (root.work / "dialog.py").write_text(common.replace('P["first_run"]', "200") + DIALOG_BATCH)
    (root.work / "dialog.sh").write_text(DIALOG_DRIVER % {"work": WORK_IN_ROOT})
    return root.run("sh", f"{WORK_IN_ROOT}/dialog.sh", timeout=300)
