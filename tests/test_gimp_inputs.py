"""GIMP-free plug-in logic: path naming, clicks vs scribbles, boxes, parasites, and one job
through the worker with a small fake engine (the real engine is tested by its own suite)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from plugin.gimp_inputs import (
    MAX_SCRIBBLE_POINTS,
    STATE_PARASITE,
    InputError,
    PathData,
    StrokeData,
    anchors_from_control_points,
    path_role,
    prompts_from_gimp,
    selection_box,
    stale_state_parasites,
    state_from_parasites,
    state_parasites,
)
from plugin.state import RoundState
from plugin.worker import (
    Job,
    JobError,
    Options,
    answer_request,
    encode_alpha,
    resolve_models,
    run_job,
    to_rgb_u8,
)


def line(x0, y0, x1, y1, n=20):
    return tuple((x0 + (x1 - x0) * i / (n - 1), y0 + (y1 - y0) * i / (n - 1)) for i in range(n))


# ---- naming convention and strokes -----------------------------------------------------------


@pytest.mark.parametrize(
    "name,expected",
    [("fg", True), ("FG hair", True), ("+left arm", True), ("  fg2", True),
     ("bg", False), ("Bg sky", False), ("-other man", False),
     ("Path", True), ("my path", True)],
)
def test_path_role_by_name(name: str, expected: bool) -> None:
    assert path_role(name) is expected


def test_unnamed_paths_follow_the_dialog_choice() -> None:
    assert path_role("Path", "background") is False
    assert path_role("Path", "ignore") is None
    assert path_role("fg x", "ignore") is True
    with pytest.raises(InputError, match="unnamed paths"):
        path_role("Path", "sideways")


def test_anchors_are_the_middle_of_each_control_triple() -> None:
    flat = [0, 0, 1, 1, 2, 2, 10, 10, 11, 11, 12, 12]
    assert anchors_from_control_points(flat) == ((1.0, 1.0), (11.0, 11.0))


def test_one_anchor_or_short_stroke_is_a_click_longer_is_a_scribble() -> None:
    paths = [
        PathData("fg dot", (StrokeData([(10, 20)], [(10, 20)]),)),
        PathData("bg short", (StrokeData([(50, 50), (52, 51)], line(50, 50, 52, 51)),)),
        PathData("fg arm", (StrokeData([(5, 5), (60, 5)], line(5, 5, 60, 5)),)),
    ]
    p = prompts_from_gimp(paths, None, [], 100, 80)
    assert p.clicks == ((10.0, 20.0, True), (51.0, 50.5, False))
    assert len(p.scribbles) == 1 and p.scribbles[0][1] is True
    pts = p.scribbles[0][0]
    assert pts[0] == (5.0, 5.0) and pts[-1] == (60.0, 5.0)


def test_closed_stroke_returns_to_its_start_and_long_strokes_are_thinned() -> None:
    circle = tuple((50 + 30 * np.cos(t), 40 + 30 * np.sin(t)) for t in np.linspace(0, 6.2, 500))
    p = prompts_from_gimp([PathData("fg ring", (StrokeData(circle[::50], circle, True),))], None, [], 100, 80)
    pts = p.scribbles[0][0]
    assert len(pts) == MAX_SCRIBBLE_POINTS
    assert pts[0] == pytest.approx(pts[-1], abs=0.01)


def test_every_input_kind_together_in_layer_pixels() -> None:
    paths = [PathData("fg", (StrokeData([(110, 60)]),)), PathData("bg", (StrokeData([(150, 90)]),))]
    p = prompts_from_gimp(paths, (90, 40, 190, 140), ["  the man in red  ", ""], 100, 80, offset=(100, 50))
    assert p.clicks == ((10.0, 10.0, True), (50.0, 40.0, False))
    assert p.boxes == ((0.0, 0.0, 90.0, 80.0),)  # clipped to the layer
    assert p.texts == ("the man in red",)


def test_ignored_paths_and_no_inputs_is_a_clear_error() -> None:
    with pytest.raises(InputError, match="no inputs: add a path named 'fg"):
        prompts_from_gimp([PathData("Path", (StrokeData([(1, 1)]),))], None, [""], 10, 10, unnamed="ignore")


def test_a_path_outside_the_layer_is_named_in_the_error() -> None:
    paths = [PathData("fg hair", (StrokeData([(5, 5)]), StrokeData([(5, 5), (140, 5)], line(5, 5, 140, 5))))]
    with pytest.raises(InputError, match=r"path 'fg hair' \(stroke 2\) has a point at \(104.47, 5\) outside the 100x80"):
        prompts_from_gimp(paths, None, [], 100, 80)


def test_selection_bounds_to_box() -> None:
    assert selection_box(False, 0, 0, 100, 80) is None
    assert selection_box(True, 10, 20, 30, 40) == (10.0, 20.0, 30.0, 40.0)
    with pytest.raises(InputError, match="does not overlap the layer"):
        prompts_from_gimp([], (200, 200, 300, 300), [], 100, 80)


# ---- parasites -------------------------------------------------------------------------------


def test_state_parasites_round_trip_and_chunking() -> None:
    data = b'{"x":"' + b"a" * 1000 + b'"}'
    ps = state_parasites(data, chunk_bytes=300)
    assert set(ps) == {STATE_PARASITE} | {f"{STATE_PARASITE}.{i}" for i in range(1, 5)}
    assert all(v.isascii() for v in ps.values())
    assert state_from_parasites(ps) == data
    assert state_from_parasites({"other": b"x"}) is None
    one = state_parasites(data)
    assert len(one) == 2
    assert stale_state_parasites(list(ps) + ["gimp-comment"], one) == ["dfimat-state.2", "dfimat-state.3", "dfimat-state.4"]


def test_state_parasites_refuse_non_ascii_and_detect_damage() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        state_parasites("é".encode())
    ps = state_parasites(b"abcdef" * 100, chunk_bytes=100)
    missing = dict(ps)
    del missing[f"{STATE_PARASITE}.3"]
    with pytest.raises(ValueError, match=r"dfimat-state\.3' is missing"):
        state_from_parasites(missing)
    edited = dict(ps)
    edited[f"{STATE_PARASITE}.1"] = b"x" * 100
    with pytest.raises(ValueError, match="do not match their header"):
        state_from_parasites(edited)


# ---- one job with a fake engine --------------------------------------------------------------


def _load_fake_engine():
    """tests/stubs/fake_engine.py as ``plugin.fake_engine`` (its relative imports need the package)."""
    path = Path(__file__).parent / "stubs" / "fake_engine.py"
    spec = importlib.util.spec_from_file_location("plugin.fake_engine", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeEngine(_load_fake_engine().MattingEngine):
    box_value = 1.0  # the assertions below read a box as fully selected


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    d = tmp_path / "models" / "small"
    d.mkdir(parents=True)
    (d / "manifest.json").write_text(json.dumps({"variant": "small"}))
    return tmp_path / "models"


def picture() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)


def test_two_rounds_carry_state_through_parasites(models: Path) -> None:
    engines: list[FakeEngine] = []

    def factory(d, dev):
        engines.append(FakeEngine(d, dev))
        return engines[-1]

    img = picture()
    job1 = Job(img, [PathData("fg", (StrokeData([(10, 10)]),))], (True, 5, 5, 30, 30))
    out1 = run_job(job1, models, factory)
    assert out1.round == 1 and out1.alpha.dtype == np.uint8 and out1.alpha[20, 20] == 255
    assert "round 1" in out1.message and "on cpu" in out1.message and " s" in out1.message
    assert engines[0].models_dir == models / "small"
    job2 = Job(img, [PathData("fg", (StrokeData([(10, 10)]),)), PathData("bg", (StrokeData([(20, 20)]),))],
               (True, 5, 5, 30, 30), parasites=out1.parasites)
    out2 = run_job(job2, models, factory)
    assert out2.round == 2
    prompts, state = engines[1].calls[0]
    assert state is not None and state.round == 1 and state.inputs.clicks == ((10.0, 10.0, True),)
    assert out2.alpha[20, 20] == 0  # the new bg click
    stored = RoundState.from_bytes(state_from_parasites(out2.parasites))
    assert stored.round == 2 and len(stored.inputs.clicks) == 2 and stored.inputs.boxes == ((5.0, 5.0, 30.0, 30.0),)


def test_snap_to_edges_is_the_engines_choice_each_round(models: Path) -> None:
    engines: list[FakeEngine] = []

    def factory(d, dev):
        engines.append(FakeEngine(d, dev))
        return engines[-1]

    job = Job(picture(), [PathData("fg", (StrokeData([(10, 10)]),))])
    run_job(job, models, factory)
    run_job(Job(job.image, job.paths, options=Options(snap_edges=False)), models, factory)
    assert [e.snap_edges for e in engines] == [True, False]


def test_start_over_changed_image_and_corrupt_state(models: Path) -> None:
    img = picture()
    job = Job(img, [PathData("fg", (StrokeData([(10, 10)]),))])
    out1 = run_job(job, models, FakeEngine)
    again = run_job(Job(img, job.paths, parasites=out1.parasites, options=Options(start_over=True)), models, FakeEngine)
    assert again.round == 1
    changed = run_job(Job(img[::-1].copy(), job.paths, parasites=out1.parasites), models, FakeEngine)
    assert changed.round == 1 and ". The image changed since the last round: starting over at round 1" in changed.message
    broken = dict(out1.parasites)
    broken[f"{STATE_PARASITE}.1"] = b"garbage"
    out = run_job(Job(img, job.paths, parasites=broken), models, FakeEngine)
    assert out.round == 1 and "could not be read" in out.message


def test_selection_written_last_round_is_not_a_new_box(models: Path) -> None:
    img = picture()
    job = Job(img, [PathData("fg", (StrokeData([(10, 10)]),))], options=Options(output="selection"))
    out1 = run_job(job, models, FakeEngine)
    assert out1.selection_written == (8.0, 8.0, 12.0, 12.0)
    sel = (True, *out1.selection_written)
    out2 = run_job(Job(img, job.paths, sel, parasites=out1.parasites, options=job.options), models, FakeEngine)
    stored = RoundState.from_bytes(state_from_parasites(out2.parasites))
    assert stored.inputs.boxes == ()


def test_errors_are_job_errors_with_clear_messages(models: Path, tmp_path: Path) -> None:
    img = picture()
    with pytest.raises(JobError, match="no inputs"):
        run_job(Job(img), models, FakeEngine)
    with pytest.raises(JobError, match="output must be one of mask, layer, selection"):
        run_job(Job(img, options=Options(output="png")), models, FakeEngine)
    with pytest.raises(JobError, match="models for 'base' not found"):
        run_job(Job(img, [PathData("fg", (StrokeData([(1, 1)]),))], options=Options(model="base")), models, FakeEngine)

    class OOM(FakeEngine):
        def matte(self, image, prompts, state=None):
            raise RuntimeError("CUDA out of memory")

    with pytest.raises(JobError, match="could not compute the matte: CUDA out of memory"):
        run_job(Job(img, [PathData("fg", (StrokeData([(1, 1)]),))]), models, OOM)


def test_resolve_models_accepts_one_export_and_says_where_it_looked(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DFIMAT_MODELS", raising=False)
    one = tmp_path / "one"
    one.mkdir()
    (one / "manifest.json").write_text(json.dumps({"variant": "small"}))
    assert resolve_models("small", one) == one
    with pytest.raises(JobError, match=r"holds 'small'"):
        resolve_models("base", one)
    monkeypatch.setenv("DFIMAT_MODELS", str(one))
    assert resolve_models("small", tmp_path / "nothing") == one


def test_pixel_layouts_become_rgb_u8() -> None:
    gray = np.arange(6, dtype=np.uint8)
    assert to_rgb_u8(gray.tobytes(), 3, 2, 1).shape == (2, 3, 3)
    rgba = np.arange(24, dtype=np.uint8)
    out = to_rgb_u8(rgba.tobytes(), 3, 2, 4)
    assert out[0, 0].tolist() == [0, 1, 2]
    u16 = np.full(6, 65535, np.uint16)
    assert to_rgb_u8(u16.tobytes(), 3, 2, 1, "u16").max() == 255
    half = np.full(6, 0.5, np.float16)
    assert to_rgb_u8(half.tobytes(), 3, 2, 1, "half").max() == 128
    lin = np.full(6, 0.214, np.float32)  # linear light 0.214 is about sRGB 0.5
    assert abs(int(to_rgb_u8(lin.tobytes(), 3, 2, 1, "float", linear=True).max()) - 128) <= 1
    with pytest.raises(JobError, match="expected 3x2x3"):
        to_rgb_u8(b"\0" * 5, 3, 2, 3)
    with pytest.raises(JobError, match="'u12' samples"):
        to_rgb_u8(b"\0" * 6, 3, 2, 1, "u12")


def test_alpha_encoded_in_the_mask_precision() -> None:
    a = np.array([[0, 128, 255]], np.uint8)
    assert encode_alpha(a) == a.tobytes()
    assert np.frombuffer(encode_alpha(a, "u16"), np.uint16).tolist() == [0, 32896, 65535]
    assert np.frombuffer(encode_alpha(a, "float"), np.float32).tolist() == pytest.approx([0, 128 / 255, 1])
    assert np.frombuffer(encode_alpha(a, "half"), np.float16)[2] == 1.0


def test_request_folder_protocol(models: Path, tmp_path: Path) -> None:
    req = tmp_path / "req"
    req.mkdir()
    img = picture()
    (req / "pixels.raw").write_bytes(img.tobytes())
    request = {"width": 60, "height": 40, "channels": 3, "pixels": "pixels.raw", "models": str(models),
               "paths": [{"name": "fg", "strokes": [{"anchors": [[10, 10]], "samples": [], "closed": False}]}],
               "selection": [False, 0, 0, 60, 40], "parasites": {}, "options": {"output": "mask"}}
    (req / "request.json").write_text(json.dumps(request))
    resp = answer_request(req, FakeEngine)
    assert resp["ok"] and resp["round"] == 1 and set(resp["parasites"]) == {"dfimat-state", "dfimat-state.1"}
    alpha = np.frombuffer((req / "alpha.raw").read_bytes(), np.uint8).reshape(40, 60)
    assert alpha[10, 10] == 255 and alpha[30, 50] == 0
    assert json.loads((req / "response.json").read_text()) == resp
    request["paths"] = []
    (req / "request.json").write_text(json.dumps(request))
    bad = answer_request(req, FakeEngine)
    assert bad == {"ok": False, "error": bad["error"]} and "no inputs" in bad["error"]


def test_the_plugin_code_never_imports_torch_or_model() -> None:
    """GIMP's Python has no torch: the plug-in's own modules must not need it."""
    root = Path(__file__).resolve().parents[1]
    files = [root / "plugin" / "gimp_inputs.py", root / "plugin" / "worker.py", root / "install.py",
             *sorted((root / "plugin" / "gimp3").glob("*.py")), root / "plugin" / "gimp2" / "dfimat_gimp2.py"]
    for f in files:
        for line in f.read_text().splitlines():
            words = line.split()
            assert not (words[:1] in (["import"], ["from"]) and words[1].split(".")[0] in ("torch", "model")), (f, line)
