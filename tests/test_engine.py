"""The ONNX Runtime engine: end-to-end parity with PyTorch, rounds and state, any image, tiling,
model-folder checks and device choice (CUDA faked; the CPU path really runs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from plugin.edge_snap import snap_to_edges
from plugin.engine import EngineError, MattingEngine
from plugin.engine_sessions import CPU, CUDA, choose_providers, create_session
from plugin.engine_tiling import bilinear_matrix, refine_tiled, tile_starts, upsample
from plugin.focus import Frame, reframe
from plugin.image_io import as_rgb, to_unit_float
from plugin.input_constraints import keep_inputs
from plugin.prompts import Prompts, encode_prompts
from plugin.state import RoundState
from tests.export_fixtures import load_net, sample_image, torch_round

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def engine(exported_small_models) -> MattingEngine:
    return MattingEngine(exported_small_models.models_dir, device="cpu")


def test_engine_reports_its_models_and_device(engine: MattingEngine, exported_small_models) -> None:
    man = json.loads((exported_small_models.models_dir / "manifest.json").read_text())
    assert engine.device == "cpu" and engine.variant == "small"
    assert engine.model_version == man["version"]


def test_two_rounds_match_the_pytorch_pipeline(engine: MattingEngine, exported_small_models) -> None:
    """export -> engine -> alpha equals PyTorch on the same S x S input and the same upsampling,
    then the outline snapped to the image's edges (plugin.edge_snap; the whole 200-px image is
    its own view) and the clicks and scribbles kept (plugin.input_constraints)."""
    net = load_net(exported_small_models.checkpoint)
    image = sample_image(150, 200)
    rgb01 = to_unit_float(as_rgb(image))
    first = Prompts(clicks=[(90, 75, True)], boxes=[(40, 20, 150, 140)], texts=["the person in the middle"])
    r1 = engine.matte(image, first)
    s_input = engine.preprocess(as_rgb(image))
    arrays = encode_prompts(first, 200, 150)
    low, coarse, alpha = torch_round(net, s_input, rgb01, arrays, [first.text], None)
    assert np.abs(r1.coarse - coarse).max() <= 1e-4
    snap = lambda a: snap_to_edges(a, as_rgb(image), 200 / engine.image_size)  # noqa: E731
    assert np.abs(r1.alpha - keep_inputs(snap(alpha), first)).max() <= 1e-4
    assert r1.alpha[75, 90] == 1.0  # the foreground click's pixel, whatever MRN said
    assert np.abs(r1.state.prev_mask - 1 / (1 + np.exp(-low))).max() <= 1e-4

    second = Prompts(clicks=[(90, 75, True), (30, 30, False)], scribbles=[([(100, 60), (110, 120)], True)])
    r2 = engine.matte(image, second, r1.state)
    merged = first.merged(second)
    assert r2.state.inputs == merged and r2.state.round == 2
    low2, coarse2, alpha2 = torch_round(net, s_input, rgb01, encode_prompts(merged, 200, 150),
                                        [merged.text], r1.state.prev_mask)
    assert np.abs(r2.coarse - coarse2).max() <= 1e-4
    assert np.abs(r2.alpha - keep_inputs(snap(alpha2), merged)).max() <= 1e-4
    assert r2.alpha[30, 30] == 0.0 and r2.alpha[75, 90] == 1.0
    # the previous mask matters: the same inputs without it give another mask
    _, coarse_fresh, _ = torch_round(net, s_input, rgb01, encode_prompts(merged, 200, 150), [merged.text], None)
    assert np.abs(coarse_fresh - coarse2).max() > 1e-3


def test_focused_rounds_match_the_pytorch_pipeline_on_their_frame(engine: MattingEngine, exported_small_models) -> None:
    """With a box, and from round 2 on, the networks see a square around the target
    (plugin.focus): the engine's matte is PyTorch's on that crop, 0 outside, and round 2 gets
    round 1's mask carried into its own frame."""
    net = load_net(exported_small_models.checkpoint)
    image = sample_image(600, 800, seed=9)
    whole = Frame.whole(800, 600)

    def pytorch(frame: Frame, prompts: Prompts, prev: np.ndarray | None) -> np.ndarray:
        view = frame.view(as_rgb(image), engine.image_size)
        local = frame.prompts_inside(prompts)
        _, _, alpha = torch_round(net, engine.preprocess(view), to_unit_float(view),
                                  encode_prompts(local, frame.width, frame.height), [local.text], prev)
        snapped = snap_to_edges(frame.fit(alpha), frame.crop(as_rgb(image)), frame.side / engine.image_size)
        return keep_inputs(frame.paste(snapped, 800, 600), prompts)

    first = Prompts(boxes=[(150, 100, 260, 300)])
    r1 = engine.matte(image, first)
    f1 = Frame.from_list(r1.state.extra["frame"], 800, 600)
    assert f1 != whole and f1.x0 <= 150 and f1.x1 >= 260 and f1.y0 <= 100 and f1.y1 >= 300
    assert np.abs(r1.alpha - pytorch(f1, first, None)).max() <= 1e-4
    assert r1.alpha[:, : f1.x0].max() == 0.0 and r1.coarse[: f1.y0].max() == 0.0

    state = RoundState.from_json(r1.state.to_json())  # as a GIMP parasite holds it
    second = Prompts(clicks=[(200, 200, True), (780, 20, False)])
    r2 = engine.matte(image, second, state)
    f2 = Frame.from_list(r2.state.extra["frame"], 800, 600)
    merged = first.merged(second)
    prev = reframe(state.prev_mask, f1, f2, engine.mask_size)
    assert np.abs(r2.alpha - pytorch(f2, merged, prev)).max() <= 1e-4
    assert r2.alpha[20, 780] == 0.0 and r2.alpha[200, 200] == 1.0

    # without focus every round sees the whole image; a state stored without a frame is whole
    flat = MattingEngine(exported_small_models.models_dir, device="cpu", focus=False)
    r1_flat = flat.matte(image, first)
    assert r1_flat.state.extra["frame"] == [0, 0, 800, 600]
    del r1_flat.state.extra["frame"]
    r2_flat = engine.matte(image, second, r1_flat.state)
    assert r2_flat.state.round == 2 and not r2_flat.started_over


def test_result_fields_and_timings(engine: MattingEngine) -> None:
    image = sample_image(96, 128, seed=2)
    r = engine.matte(image, Prompts(clicks=[(60, 50, True)]))
    assert r.alpha.shape == (96, 128) and r.alpha.dtype == np.float32
    assert r.coarse.shape == (96, 128) and r.coarse.dtype == np.float32
    assert 0.0 <= r.alpha.min() and r.alpha.max() <= 1.0
    assert set(r.timings) == {"encode", "decode", "refine", "total"}
    assert r.timings["total"] >= r.timings["encode"] + r.timings["decode"] + r.timings["refine"]
    assert r.device == "cpu" and r.started_over is False and r.notice is None
    assert r.state.prev_mask.shape == (96, 96) and r.state.round == 1
    # the state survives its JSON form
    again = RoundState.from_json(r.state.to_json())
    assert again.round == 1 and again.inputs == r.state.inputs and again.model_version == engine.model_version


def test_image_is_encoded_once_per_image(exported_small_models) -> None:
    runs: dict[str, int] = {}

    class Counting:
        def __init__(self, sess, name):
            self.sess, self.name = sess, name

        def run(self, out, feeds):
            runs[self.name] = runs.get(self.name, 0) + 1
            return self.sess.run(out, feeds)

        def __getattr__(self, item):
            return getattr(self.sess, item)

    def factory(path: str, providers):
        return Counting(create_session(path, providers), Path(path).stem)

    eng = MattingEngine(exported_small_models.models_dir, device="cpu", session_factory=factory)
    image = sample_image(80, 100, seed=4)
    r = eng.matte(image, Prompts(clicks=[(50, 40, True)]))
    r = eng.matte(image, Prompts(clicks=[(20, 20, False)]), r.state)
    eng.matte(image, Prompts(boxes=[(10, 10, 90, 70)]), r.state)
    assert runs == {"image_encoder": 1, "prompt_decoder": 3, "mrn": 3}


def test_changed_image_starts_over(engine: MattingEngine) -> None:
    image = sample_image(80, 100, seed=5)
    r1 = engine.matte(image, Prompts(clicks=[(50, 40, True)]))
    r2 = engine.matte(image, Prompts(clicks=[(10, 10, False)]), r1.state)
    other = image.copy()
    other[0, 0, 0] ^= 1
    r3 = engine.matte(other, Prompts(clicks=[(30, 30, True)]), r2.state)
    assert r3.started_over and r3.state.round == 1
    assert r3.notice == "image changed since round 2: starting over at round 1"
    assert r3.state.inputs == Prompts(clicks=[(30, 30, True)])
    fresh = engine.matte(other, Prompts(clicks=[(30, 30, True)]))
    np.testing.assert_allclose(r3.alpha, fresh.alpha, atol=1e-6)


def test_state_of_other_models_starts_over(engine: MattingEngine) -> None:
    image = sample_image(80, 100, seed=6)
    r1 = engine.matte(image, Prompts(clicks=[(50, 40, True)]))
    r1.state.model_version = "base-000000000000"
    r2 = engine.matte(image, Prompts(clicks=[(20, 20, True)]), r1.state)
    assert r2.started_over and r2.state.round == 1 and "models changed since round 1" in r2.notice


def test_a_round_may_repeat_earlier_inputs(engine: MattingEngine) -> None:
    image = sample_image(80, 100, seed=7)
    click = Prompts(clicks=[(50, 40, True)])
    r1 = engine.matte(image, click)
    r2 = engine.matte(image, click.merged(Prompts(clicks=[(5, 5, False)])), r1.state)
    assert r2.state.inputs.clicks == ((50.0, 40.0, True), (5.0, 5.0, False))


@pytest.mark.parametrize(
    "make",
    [
        lambda img: img,  # uint8 RGB
        lambda img: img.astype(np.uint16) * 257,  # uint16
        lambda img: img.astype(np.float32) / 255.0,  # float
        lambda img: np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2),  # RGBA
    ],
    ids=["uint8", "uint16", "float", "rgba"],
)
def test_any_colour_image_gives_the_same_matte(engine: MattingEngine, make) -> None:
    image = sample_image(72, 90, seed=8)
    ref = engine.matte(image, Prompts(clicks=[(45, 36, True)])).alpha
    got = engine.matte(make(image), Prompts(clicks=[(45, 36, True)])).alpha
    assert got.shape == (72, 90)
    assert np.abs(got - ref).max() <= 2e-3


@pytest.mark.parametrize("shape", [(64, 64), (70, 90, 1), (64, 100)], ids=["grey", "grey1", "wide-grey"])
def test_grey_images(engine: MattingEngine, shape) -> None:
    image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    r = engine.matte(image, Prompts(boxes=[(5, 5, 50, 60)]))
    assert r.alpha.shape == shape[:2]


def test_bad_images_and_prompts_are_refused(engine: MattingEngine) -> None:
    with pytest.raises(ValueError, match="sides must be between"):
        engine.matte(np.zeros((8, 8, 3), np.uint8), Prompts(clicks=[(1, 1, True)]))
    with pytest.raises(ValueError, match="dtype int32"):
        engine.matte(np.zeros((32, 32, 3), np.int32), Prompts(clicks=[(1, 1, True)]))
    with pytest.raises(ValueError, match="outside the 32x32 image"):
        engine.matte(np.zeros((32, 32, 3), np.uint8), Prompts(clicks=[(40, 1, True)]))
    with pytest.raises(ValueError, match="no inputs"):
        engine.matte(np.zeros((32, 32, 3), np.uint8), Prompts())


# -- tiling -----------------------------------------------------------------------------------
def test_upsampling_is_pytorch_bilinear() -> None:
    import torch
    import torch.nn.functional as F

    low = np.random.default_rng(0).normal(0, 3, (96, 96)).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(low)[None, None], size=(301, 157), mode="bilinear", align_corners=False)
    # PyTorch computes source coordinates in float32 (error ~1e-5 px at these sizes), the engine
    # in float64: on logits of slope ~6 per low-res cell that leaves differences below 1e-4.
    np.testing.assert_allclose(upsample(low, 301, 157), ref[0, 0].numpy(), atol=1e-4)
    window = upsample(low, 301, 157, slice(100, 180), slice(20, 90))
    np.testing.assert_allclose(window, ref[0, 0, 100:180, 20:90].numpy(), atol=1e-4)
    assert np.allclose(bilinear_matrix(50, 7).sum(1), 1.0)


def test_tiles_cover_the_image_and_blend_to_the_identity() -> None:
    assert tile_starts(100, 100, 10) == [0]
    assert tile_starts(250, 100, 20) == [0, 80, 150]
    values = np.random.default_rng(0).random((230, 310)).astype(np.float32)
    out = refine_tiled(230, 310, lambda r, c: values[r, c], tile=64, overlap=16)
    np.testing.assert_allclose(out, values, atol=1e-6)


def test_tiled_refinement_runs_in_tiles(exported_small_models, engine: MattingEngine) -> None:
    shapes = []

    class Recording:
        def __init__(self, sess):
            self.sess = sess

        def run(self, out, feeds):
            if "coarse" in feeds:
                shapes.append(feeds["image"].shape[2:])
            return self.sess.run(out, feeds)

        def __getattr__(self, item):
            return getattr(self.sess, item)

    tiled = MattingEngine(exported_small_models.models_dir, device="cpu", tile_pixels=100 * 100,
                          tile_size=96, tile_overlap=24, session_factory=lambda p, pr: Recording(create_session(p, pr)))
    image = sample_image(150, 200, seed=9)
    prompts = Prompts(boxes=[(40, 20, 150, 140)])
    r = tiled.matte(image, prompts)
    whole = engine.matte(image, prompts)
    assert len(shapes) == len(tile_starts(150, 96, 24)) * len(tile_starts(200, 96, 24)) == 6
    assert all(s == (96, 96) for s in shapes)
    assert r.alpha.shape == (150, 200) and 0.0 <= r.alpha.min() and r.alpha.max() <= 1.0
    np.testing.assert_allclose(r.coarse, whole.coarse, atol=1e-6)
    # the global branch sees one tile, not the whole picture, so tiles differ a little
    assert np.abs(r.alpha - whole.alpha).mean() < 0.1


# -- models folder ----------------------------------------------------------------------------
def copy_models(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_models_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="models folder not found"):
        MattingEngine(tmp_path / "nothing")


def test_missing_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(EngineError, match="no manifest.json"):
        MattingEngine(tmp_path / "m")


def test_missing_file_is_named(exported_small_models, tmp_path: Path) -> None:
    d = copy_models(exported_small_models.models_dir, tmp_path / "m")
    (d / "mrn.onnx").unlink()
    with pytest.raises(EngineError, match=r"model file missing: .*mrn\.onnx"):
        MattingEngine(d)


def test_corrupt_file_is_named(exported_small_models, tmp_path: Path) -> None:
    d = copy_models(exported_small_models.models_dir, tmp_path / "m")
    data = bytearray((d / "prompt_decoder.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (d / "prompt_decoder.onnx").write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"corrupt or replaced .*prompt_decoder\.onnx"):
        MattingEngine(d)


def test_mismatched_graph_is_named(exported_small_models, tmp_path: Path) -> None:
    """A graph swapped for another (checksums updated by hand) is caught by its inputs."""
    from plugin.models_dir import sha256_file

    d = copy_models(exported_small_models.models_dir, tmp_path / "m")
    shutil.copy(d / "mrn.onnx", d / "image_encoder.onnx")
    man = json.loads((d / "manifest.json").read_text())
    man["files"]["image_encoder.onnx"] = sha256_file(d / "image_encoder.onnx")
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(EngineError, match=r"image_encoder\.onnx: graph inputs"):
        MattingEngine(d)


def test_manifest_of_another_format_is_refused(exported_small_models, tmp_path: Path) -> None:
    d = copy_models(exported_small_models.models_dir, tmp_path / "m")
    man = json.loads((d / "manifest.json").read_text())
    man["format"] = 99
    (d / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(EngineError, match="format 99"):
        MattingEngine(d)


def test_default_models_dir_comes_from_the_environment(exported_small_models, monkeypatch) -> None:
    monkeypatch.setenv("DFIMAT_MODELS", str(exported_small_models.models_dir))
    assert MattingEngine(device="cpu").model_version.startswith("small-")


# -- devices ----------------------------------------------------------------------------------
def test_provider_choice() -> None:
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", [CPU]) == [CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert choose_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    with pytest.raises(EngineError, match="no CUDAExecutionProvider"):
        choose_providers("cuda", [CPU])
    with pytest.raises(EngineError, match="unknown device 'gpu'"):
        choose_providers("gpu", [CPU])


def test_cuda_asked_without_cuda_is_an_error(exported_small_models, monkeypatch) -> None:
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CPU])
    with pytest.raises(EngineError, match="device 'cuda'"):
        MattingEngine(exported_small_models.models_dir, device="cuda")


def test_auto_uses_cuda_first_and_falls_back_when_it_cannot_start(exported_small_models, monkeypatch) -> None:
    """ONNX Runtime lists CUDA but cannot start it (as on a machine without a GPU): auto mode
    ends up on the CPU with fp32 graphs and says so; cuda mode refuses."""
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [CUDA, CPU])
    asked = []

    def factory(path, providers):
        asked.append((Path(path).name, list(providers)))
        return create_session(path, providers)

    eng = MattingEngine(exported_small_models.models_dir, device="auto", session_factory=factory)
    assert asked[0] == ("image_encoder.fp16.onnx", [CUDA, CPU])
    assert eng.device == "cpu"
    r = eng.matte(sample_image(64, 64), Prompts(clicks=[(30, 30, True)]))
    assert r.device == "cpu" and "CUDA unavailable for image_encoder.fp16.onnx: fell back to CPU" in r.notice
    assert ("image_encoder.onnx", [CPU]) in asked
    with pytest.raises(EngineError, match="CUDA was asked for but ONNX Runtime could not start it"):
        MattingEngine(exported_small_models.models_dir, device="cuda")


def test_cuda_failure_at_run_time_falls_back_to_cpu(exported_small_models, engine: MattingEngine) -> None:
    class FakeCuda:
        """Claims CUDA and runs out of memory in MRN."""

        def __init__(self, sess, name):
            self.sess, self.name = sess, name

        def get_providers(self):
            return [CUDA, CPU]

        def run(self, out, feeds):
            if self.name.startswith("mrn"):
                raise RuntimeError("CUDA failure 2: out of memory ; GPU=0")
            return self.sess.run(out, feeds)

        def __getattr__(self, item):
            return getattr(self.sess, item)

    def factory(path, providers):
        sess = create_session(path, [CPU])
        return FakeCuda(sess, Path(path).name) if CUDA in providers else sess

    eng = MattingEngine(exported_small_models.models_dir, device="auto", session_factory=factory,
                        available_providers=[CUDA, CPU])
    assert eng.device == "cuda"
    image = sample_image(64, 80, seed=3)
    prompts = Prompts(clicks=[(40, 30, True)])
    r = eng.matte(image, prompts)
    assert r.device == "cpu" and r.notice == "CUDA out of memory: fell back to CPU"
    ref = engine.matte(image, prompts)
    # encoder ran in fp16 "on CUDA" (here: the fp16 graph on CPU), the rest in fp32 on the CPU
    assert np.abs(r.alpha - ref.alpha).max() < 2e-2
    r2 = eng.matte(image, Prompts(clicks=[(10, 10, False)]), r.state)
    assert r2.notice is None and r2.device == "cpu"


def test_plugin_side_never_imports_torch() -> None:
    code = ("import sys; import plugin.engine, plugin.cli, plugin.image_io, plugin.models_dir; "
            "assert 'torch' not in sys.modules and 'model' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_inputs_are_enforced_unless_the_engine_is_told_not_to(exported_small_models) -> None:
    """keep_inputs=False gives MRN's own alpha (what the network makes of the inputs)."""
    image = sample_image(120, 160, seed=5)
    prompts = Prompts(clicks=[(40.5, 60.5, True), (130.5, 20.5, False)])
    kept = MattingEngine(exported_small_models.models_dir, device="cpu").matte(image, prompts)
    raw = MattingEngine(exported_small_models.models_dir, device="cpu", keep_inputs=False).matte(image, prompts)
    assert np.array_equal(kept.coarse, raw.coarse)
    assert np.array_equal(kept.alpha, keep_inputs(raw.alpha, prompts))
    assert kept.alpha[60, 40] == 1.0 and kept.alpha[20, 130] == 0.0


def test_edges_are_snapped_unless_the_engine_is_told_not_to(exported_small_models) -> None:
    """snap_edges=False leaves the outline where MRN put it; by default it is the guided
    filter's (plugin.edge_snap), before the inputs are kept."""
    image = sample_image(120, 160, seed=6)
    prompts = Prompts(clicks=[(60.5, 50.5, True)])
    raw = MattingEngine(exported_small_models.models_dir, device="cpu", snap_edges=False,
                        keep_inputs=False).matte(image, prompts)
    snapped = MattingEngine(exported_small_models.models_dir, device="cpu", keep_inputs=False).matte(image, prompts)
    assert np.array_equal(snapped.coarse, raw.coarse)
    assert np.abs(snapped.alpha - snap_to_edges(raw.alpha, as_rgb(image), 160 / 384)).max() <= 1e-6
    assert np.abs(snapped.alpha - raw.alpha).max() > 1e-3
