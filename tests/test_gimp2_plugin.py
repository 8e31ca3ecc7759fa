"""The GIMP 2.10 plug-in (Python 2 syntax) run under pytest against gimpfu-compatible stubs
(tests/stubs) and the real Python 3 worker in a subprocess, with a fake engine (no models)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
STUBS = Path(__file__).resolve().parent / "stubs"
PLUGIN_FILE = ROOT / "plugin" / "gimp2" / "dfimat_gimp2.py"


@pytest.fixture(scope="module")
def g2():
    """The plug-in module loaded as GIMP 2.10 would (its register() runs against the stubs)."""
    sys.path.insert(0, str(STUBS))
    try:
        for name in ("gimp", "gimpfu", "gimpenums"):
            sys.modules.pop(name, None)
        spec = importlib.util.spec_from_file_location("dfimat_gimp2", PLUGIN_FILE)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.path.remove(str(STUBS))
        for name in ("gimp", "gimpfu", "gimpenums"):
            sys.modules.pop(name, None)


@pytest.fixture(scope="module")
def support(tmp_path_factory) -> Path:
    """What install.py puts in dfimat_gimp2_support, with the fake engine and a fake model."""
    d = tmp_path_factory.mktemp("support")
    shutil.copytree(ROOT / "plugin", d / "plugin", ignore=shutil.ignore_patterns("__pycache__", "gimp2", "gimp3"))
    shutil.copyfile(STUBS / "fake_engine.py", d / "plugin" / "engine.py")
    (d / "models" / "small").mkdir(parents=True)
    (d / "models" / "small" / "manifest.json").write_text(json.dumps({"variant": "small"}))
    (d / "worker.json").write_text(json.dumps({"python": sys.executable, "support": str(d), "models": str(d / "models")}))
    return d


def picture(g2, w=60, h=40, layer_type=0, offsets=(0, 0), image_size=None, precision=150):
    gimp = sys.modules["gimp"]
    iw, ih = image_size or (w, h)
    img = gimp.Image(iw, ih, 1 if layer_type in (2, 3) else 0, precision)
    layer = gimp.Layer(img, "people", w, h, layer_type)
    layer.pixels[:] = np.random.default_rng(0).integers(0, 256, layer.pixels.shape, dtype=np.uint8)
    layer.offsets = offsets
    img.insert_layer(layer)
    return img, layer


def add_inputs(img):
    fg = img.add_vectors("fg person")
    fg.add_stroke([(10, 10)])
    bg = img.add_vectors("bg other")
    bg.add_stroke([(40, 5), (55, 5)])
    sys.modules["gimp"].pdb.gimp_image_select_rectangle(img, 2, 5, 5, 30, 30)


def mask_of(layer) -> np.ndarray:
    return layer.mask.pixels[..., 0]


def test_registers_one_procedure_like_gimp3(g2) -> None:
    regs = sys.modules["gimpfu"].registered
    assert [r["name"] for r in regs] == ["plug-in-dfimat-matte"]
    r = regs[0]
    assert r["menu"] == "<Image>/Filters/Matting" and r["label"] == "Interactive Matte (DFIMat)..."
    assert r["imagetypes"] == "RGB*, GRAY*"
    assert [p[1] for p in r["params"]] == ["image", "drawable", "description", "output", "device", "model",
                                           "unnamed", "start_over", "snap_edges"]


def test_snap_to_edges_reaches_the_engine(g2, support: Path) -> None:
    """The "Snap the outline" toggle (on by default) is the engine's snap_edges for that round."""
    img, layer = picture(g2)
    add_inputs(img)
    g2.dfimat_matte(img, layer, support_dir=str(support))
    assert json.loads(layer.parasite_find("dfimat-state.1").data)["extra"]["snap_edges"] is True
    g2.dfimat_matte(img, layer, snap_edges=False, support_dir=str(support))
    assert json.loads(layer.parasite_find("dfimat-state.1").data)["extra"]["snap_edges"] is False


def test_two_rounds_write_mask_and_state_as_one_undo_step_each(g2, support: Path) -> None:
    img, layer = picture(g2)
    add_inputs(img)
    before = len(img.undo.steps)
    resp = g2.dfimat_matte(img, layer, support_dir=str(support))
    assert resp["round"] == 1
    m = mask_of(layer)
    assert m[10, 10] == 255 and m[20, 20] == 128 and m[5, 45] == 0 and m[38, 58] == 0
    assert len(img.undo.steps) == before + 1
    step = img.undo.steps[-1]
    assert "add mask to people" in step and "attach parasite dfimat-state" in step
    assert set(layer.parasite_list()) == {"dfimat-state", "dfimat-state.1"}
    assert all(p.flags == 3 for p in layer.parasites.values())
    state = json.loads(layer.parasite_find("dfimat-state.1").data)
    assert state["round"] == 1 and state["inputs"]["clicks"] == [[10.0, 10.0, True]]
    assert state["inputs"]["boxes"] == [[5.0, 5.0, 35.0, 35.0]] and len(state["inputs"]["scribbles"]) == 1
    gimp = sys.modules["gimp"]
    assert "round 1" in gimp.messages[-1] and "cpu" in gimp.messages[-1]

    more = img.add_vectors("-arm")
    more.add_stroke([(30, 30)])
    resp2 = g2.dfimat_matte(img, layer, support_dir=str(support))
    assert resp2["round"] == 2 and len(img.undo.steps) == before + 2
    assert "remove mask from people" in img.undo.steps[-1]
    assert mask_of(layer)[30, 30] == 0 and mask_of(layer)[10, 10] == 255
    assert json.loads(layer.parasite_find("dfimat-state.1").data)["round"] == 2
    g2.dfimat_matte(img, layer, start_over=True, support_dir=str(support))
    assert json.loads(layer.parasite_find("dfimat-state.1").data)["round"] == 1


def test_new_layer_and_selection_outputs(g2, support: Path) -> None:
    img, layer = picture(g2, layer_type=1, offsets=(10, 5), image_size=(80, 50))
    img.add_vectors("fg").add_stroke([(20, 15)])  # image pixels: (10, 10) in the layer
    g2.dfimat_matte(img, layer, output=1, support_dir=str(support))
    assert [lay.name for lay in img.layers] == ["DFIMat matte of people (round 1)", "people"]
    new = img.layers[0]
    assert new.offsets == (10, 5) and new.pixels[10, 10].tolist() == [255, 255, 255] and new.pixels[30, 50].max() == 0
    assert layer.mask is None

    g2.dfimat_matte(img, layer, output=2, support_dir=str(support))
    sel = img.selection
    assert sel[15, 20] == 255 and sel[0:5, :].max() == 0 and sel[:, :10].max() == 0
    assert img.channels == []  # the temporary channel is gone
    g2.dfimat_matte(img, layer, output=2, support_dir=str(support))
    state = json.loads(layer.parasite_find("dfimat-state.1").data)
    assert state["round"] == 3 and state["inputs"]["boxes"] == []  # own selection is not a box


def test_gray_layer_and_a_layer_mask_as_the_target(g2, support: Path) -> None:
    img, layer = picture(g2, layer_type=3)
    img.add_vectors("+x").add_stroke([(12, 12)])
    g2.dfimat_matte(img, layer, support_dir=str(support))
    g2.dfimat_matte(img, layer.mask, support_dir=str(support))  # the user had the mask active
    assert json.loads(layer.parasite_find("dfimat-state.1").data)["round"] == 2


def test_sixteen_bit_linear_image(g2, support: Path) -> None:
    img, layer = picture(g2, precision=200)  # U16_LINEAR: 6 bytes per RGB pixel
    assert layer.bpp == 6
    img.add_vectors("fg").add_stroke([(10, 10)])
    g2.dfimat_matte(img, layer, support_dir=str(support))
    mask = layer.mask.pixels.view(np.uint16)[..., 0]
    assert mask[10, 10] == 65535 and mask[30, 50] == 0
    g2.dfimat_matte(img, layer, output=1, support_dir=str(support))
    new = img.layers[0].pixels.view(np.uint16)
    assert new[10, 10].tolist() == [65535] * 3 and new[30, 50].tolist() == [0] * 3


def test_errors_leave_the_image_unchanged(g2, support: Path, tmp_path: Path) -> None:
    img, layer = picture(g2)
    steps = len(img.undo.steps)
    with pytest.raises(g2.DFIMatError, match="no inputs"):
        g2.dfimat_matte(img, layer, support_dir=str(support))
    img.add_vectors("fg far").add_stroke([(10, 10), (90, 10)])
    with pytest.raises(g2.DFIMatError, match="path 'fg far' has a point at .* outside the 60x40 layer"):
        g2.dfimat_matte(img, layer, support_dir=str(support))
    img.vectors[-1].strokes[0].anchors[-1] = (50.0, 10.0)
    with pytest.raises(g2.DFIMatError, match="models for 'base' not found"):
        g2.dfimat_matte(img, layer, model=1, support_dir=str(support))
    with pytest.raises(g2.DFIMatError, match="worker.json is missing"):
        g2.dfimat_matte(img, layer, support_dir=str(tmp_path))
    with pytest.raises(g2.DFIMatError, match="option is out of range"):
        g2.dfimat_matte(img, layer, output=7, support_dir=str(support))
    assert len(img.undo.steps) == steps and layer.mask is None and layer.parasite_list() == ()


def test_worker_timeout_crash_and_missing_python(g2, support: Path, tmp_path: Path) -> None:
    img, layer = picture(g2)
    img.add_vectors("fg").add_stroke([(10, 10)])
    slow = tmp_path / "slow"
    slow.mkdir()
    (slow / "plugin").mkdir()
    (slow / "plugin" / "__init__.py").write_text("")
    (slow / "plugin" / "worker.py").write_text("import time\ntime.sleep(30)\n")
    (slow / "worker.json").write_text(json.dumps({"python": sys.executable, "support": str(slow)}))
    with pytest.raises(g2.DFIMatError, match="did not finish within 1 s"):
        g2.dfimat_matte(img, layer, support_dir=str(slow), timeout=1)
    (slow / "plugin" / "worker.py").write_text("raise SystemExit('broken install: no onnxruntime')\n")
    with pytest.raises(g2.DFIMatError, match=r"stopped without an answer \(exit 1\):\nbroken install"):
        g2.dfimat_matte(img, layer, support_dir=str(slow))
    (slow / "worker.json").write_text(json.dumps({"python": str(tmp_path / "nope"), "support": str(slow)}))
    with pytest.raises(g2.DFIMatError, match="could not start the DFIMat engine"):
        g2.dfimat_matte(img, layer, support_dir=str(slow))
    assert layer.mask is None and layer.parasite_list() == ()


def _py3_only_constructs(src: str) -> list[str]:
    """Python 3-only syntax that Python 2.7 would reject (checked with the ast of Python 3)."""
    import ast

    found = []
    for node in ast.walk(ast.parse(src)):
        kind = type(node).__name__
        if kind in ("JoinedStr", "AnnAssign", "NamedExpr", "Nonlocal", "YieldFrom", "AsyncFunctionDef", "Await"):
            found.append(f"{kind} at line {node.lineno}")
        if isinstance(node, (ast.FunctionDef, ast.Lambda)):
            a = node.args
            if a.kwonlyargs or a.posonlyargs or any(x.annotation for x in a.args):
                found.append(f"Python 3 arguments at line {node.lineno}")
            if isinstance(node, ast.FunctionDef) and node.returns is not None:
                found.append(f"return annotation at line {node.lineno}")
        if isinstance(node, ast.Raise) and node.cause is not None:
            found.append(f"raise ... from at line {node.lineno}")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.MatMult):
            found.append(f"@ operator at line {node.lineno}")
    return found


def test_the_file_is_python2_syntax() -> None:
    """GIMP 2.10 runs it with Python 2.7: no Python 3-only syntax, and it compiles with a
    Python 2 when one is installed (pyenv's 2.7.18 here)."""
    src = PLUGIN_FILE.read_text()
    assert _py3_only_constructs(src) == []
    assert _py3_only_constructs("x = f'{1}'\ndef g(a: int) -> int: return a") != []
    py2 = shutil.which("python2.7") or shutil.which("python2")
    if py2 is not None:
        env = dict(os.environ, PYENV_VERSION="2.7.18")
        res = subprocess.run([py2, "-c", "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')",
                              str(PLUGIN_FILE)], capture_output=True, text=True, env=env)
        if "command not found" not in res.stderr:
            assert res.returncode == 0, res.stderr


def test_real_engine_through_the_worker(g2, exported_small_models, tmp_path: Path) -> None:
    """The real ONNX engine behind the GIMP 2.10 plug-in: the mask is the engine's matte."""
    from plugin.engine import MattingEngine
    from plugin.gimp_inputs import state_from_parasites
    from plugin.prompts import Prompts
    from plugin.state import RoundState

    d = tmp_path / "support"
    shutil.copytree(ROOT / "plugin", d / "plugin", ignore=shutil.ignore_patterns("__pycache__", "gimp2", "gimp3"))
    models = exported_small_models.models_dir
    (d / "worker.json").write_text(json.dumps({"python": sys.executable, "support": str(d), "models": str(models)}))
    img, layer = picture(g2, 64, 48)
    add_inputs(img)
    resp = g2.dfimat_matte(img, layer, description="the person on the left", support_dir=str(d))
    assert resp["round"] == 1 and "small model on cpu" in resp["message"]
    data = {k: p.data.encode("ascii") for k, p in layer.parasites.items()}
    state = RoundState.from_bytes(state_from_parasites(data))
    assert state.inputs.texts == ("the person on the left",)
    engine = MattingEngine(models, device="cpu")
    rgb = np.ascontiguousarray(layer.pixels[..., :3])
    want = np.clip(np.rint(engine.matte(rgb, Prompts.from_dict(state.inputs.to_dict())).alpha * 255), 0, 255)
    diff = np.abs(mask_of(layer).astype(int) - want.astype(int))
    assert diff.max() <= 1, diff.max()
