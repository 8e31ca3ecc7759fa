"""Export: the command's refusals, the manifest, the ONNX checker and graph-by-graph parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from export import ExportError, ExportOptions, export_models
from export.__main__ import main as export_main
from export.parity import FP16_RELATIVE_BOUND, FP32_BOUND, max_abs_diff, text_cosines
from plugin.models_dir import sha256_file
from tests.export_fixtures import load_net

GRAPHS = ("image_encoder", "prompt_decoder", "text_encoder", "mrn")


def manifest_of(exported) -> dict:
    return json.loads((exported.models_dir / "manifest.json").read_text())


def test_command_refuses_without_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export_main(["--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint is required" in err and "random weights" in err
    assert not (tmp_path / "m").exists()


def test_command_refuses_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert export_main(["--checkpoint", str(tmp_path / "none.pt"), "--out", str(tmp_path / "m")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_export_refuses_a_folder_that_is_not_a_models_folder(tmp_path: Path, small_checkpoint: Path) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(ExportError, match="not a models folder"):
        export_models(ExportOptions(checkpoint=small_checkpoint, out=tmp_path / "photos"))
    assert (tmp_path / "photos" / "holiday.jpg").read_bytes() == b"x"


def test_export_refuses_the_wrong_variant(tmp_path: Path, small_checkpoint: Path) -> None:
    with pytest.raises(ExportError, match="variant 'small', not the requested 'base'"):
        export_models(ExportOptions(checkpoint=small_checkpoint, out=tmp_path / "m", variant="base"))
    assert not (tmp_path / "m").exists()


def test_manifest_describes_the_models(exported_small_models) -> None:
    man = manifest_of(exported_small_models)
    assert man["model"] == "DFIMat-S" and man["variant"] == "small"
    assert man["image_size"] == 384 and man["mask_size"] == 96
    assert man["version"].startswith("small-") and len(man["version"]) == len("small-") + 12
    assert man["metrics"] == {"sad": 12.5, "mse": 0.004}
    assert man["training"]["training_data"] == ["SMPMat (test fixture)"]
    assert man["preprocessing"]["normalisation"]["inside_graph"] is True
    enc = man["graphs"]["image_encoder"]
    assert [i["name"] for i in enc["inputs"]] == ["image"]
    assert enc["inputs"][0]["shape"] == [1, 3, 384, 384]
    assert [o["name"] for o in enc["outputs"]] == ["level32", "level16", "level8", "mask_features"]
    dec = man["graphs"]["prompt_decoder"]
    shapes = {i["name"]: i["shape"] for i in dec["inputs"]}
    assert shapes["points"] == [1, "P", 16, 2] and shapes["text_hidden"] == [1, "T", 384]
    assert shapes["prev_prob"] == [1, 1, 96, 96]
    assert [o["name"] for o in dec["outputs"]] == ["low_res_logits", "class_logit", "conflict_map"]
    mrn_shapes = {i["name"]: i["shape"] for i in man["graphs"]["mrn"]["inputs"]}
    assert mrn_shapes["image"] == [1, 3, "H", "W"]
    # every file in the folder is listed with its true sha256, and nothing else is listed
    files = {p.name for p in exported_small_models.models_dir.iterdir()} - {"manifest.json"}
    assert set(man["files"]) == files
    for name, digest in man["files"].items():
        assert sha256_file(exported_small_models.models_dir / name) == digest
    assert "tokenizer.json" in files and man["text"]["tokenizer"] == "tokenizer.json"
    assert exported_small_models.models_dir.stat().st_mode & 0o777 == 0o755
    assert not list(exported_small_models.models_dir.parent.glob(".models*"))  # no staging left


@pytest.mark.parametrize("name", GRAPHS)
def test_graphs_pass_the_checker_at_opset_17(exported_small_models, name: str) -> None:
    path = exported_small_models.models_dir / f"{name}.onnx"
    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.load(str(path), load_external_data=False)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17


@pytest.mark.parametrize("name", GRAPHS)
def test_fp32_graph_matches_pytorch(exported_small_models, name: str) -> None:
    net = load_net(exported_small_models.checkpoint)
    diff = max_abs_diff(name, net, exported_small_models.models_dir / f"{name}.onnx", seed=3)
    assert diff <= FP32_BOUND, f"{name}: max |onnx - torch| = {diff}"


def test_decoder_parity_covers_rounds_and_conflicts(exported_small_models) -> None:
    """Prompt counts 1, 3 and 6 run through the one graph; on later rounds the conflict map
    (M_ref) is non-trivial and identical to PyTorch's."""
    from export.parity import cpu_session, onnx_outputs, random_cases, torch_outputs

    net = load_net(exported_small_models.checkpoint)
    sess = cpu_session(exported_small_models.models_dir / "prompt_decoder.onnx")
    cases = random_cases("prompt_decoder", net, seed=5)
    assert {c["points"].shape[1] for c in cases} == {1, 3, 6}
    conflicts = 0
    for feeds in cases:
        ref = torch_outputs("prompt_decoder", net, feeds)
        got = onnx_outputs(sess, feeds)
        np.testing.assert_array_equal(got[2], ref[2])
        assert got[0].shape == (1, 1, 96, 96)
        conflicts += int(np.count_nonzero(ref[2])) if feeds["prev_valid"][0] == 1.0 else 0
    assert conflicts > 0


@pytest.mark.parametrize("name", ("image_encoder", "mrn"))
def test_fp16_copy_keeps_its_documented_bound(exported_small_models, name: str) -> None:
    man = manifest_of(exported_small_models)
    half = man["graphs"][name]["fp16_file"]
    assert half == f"{name}.fp16.onnx"
    net = load_net(exported_small_models.checkpoint)
    rel = max_abs_diff(name, net, exported_small_models.models_dir / half, seed=4, relative=True)
    assert rel <= FP16_RELATIVE_BOUND


def test_text_int8_keeps_cosine_similarity(exported_small_models, tmp_path: Path) -> None:
    from export.optimize import to_int8

    src = exported_small_models.models_dir / "text_encoder.onnx"
    dst = tmp_path / "text_encoder.int8.onnx"
    to_int8(src, dst)
    assert dst.stat().st_size < src.stat().st_size / 3
    cos = text_cosines(src, dst, exported_small_models.models_dir / "tokenizer.json")
    assert len(cos) >= 7 and min(cos) >= 0.99, cos
