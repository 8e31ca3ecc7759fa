"""The headless command: rounds through a state file, outputs, and one-line errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugin.cli import main, parse_click, parse_scribble
from plugin.state import RoundState
from tests.export_fixtures import sample_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def picture(tmp_path: Path) -> Path:
    path = tmp_path / "people.png"
    cv2.imwrite(str(path), cv2.cvtColor(sample_image(90, 120, seed=11), cv2.COLOR_RGB2BGR))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_parsers() -> None:
    assert parse_click("fg:10,20.5") == (10.0, 20.5, True)
    assert parse_click("bg: 3 , 4") == (3.0, 4.0, False)
    assert parse_scribble("bg:1,2;3,4;") == ([(1.0, 2.0), (3.0, 4.0)], False)


def test_rounds_continue_through_the_state_file(exported_small_models, picture: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture) -> None:
    state, out = tmp_path / "state.json", tmp_path / "alpha.png"
    common = ["--models", str(exported_small_models.models_dir), "--device", "cpu", "--state", str(state)]
    code, stdout, err = run(["matte", str(picture), "--box", "20,10,100,85", "--click", "fg:60,45",
                             "--text", "the person", "--out", str(out), *common], capsys)
    assert code == 0, err
    assert "device: cpu" in stdout
    for stage in ("encode", "decode", "refine", "total"):
        assert f"{stage}: " in stdout and " ms" in stdout
    alpha = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint8 and alpha.shape == (90, 120)
    first = RoundState.from_json(state.read_bytes())
    assert first.round == 1 and first.inputs.boxes == ((20.0, 10.0, 100.0, 85.0),)

    code, stdout, err = run(["matte", str(picture), "--click", "bg:5,5", "--scribble", "fg:50,30;60,70",
                             "--out", str(out), *common], capsys)
    assert code == 0, err
    second = RoundState.from_json(state.read_bytes())
    assert second.round == 2 and "round: 2" in stdout
    assert second.inputs.clicks == ((60.0, 45.0, True), (5.0, 5.0, False))
    assert second.inputs.texts == ("the person",) and len(second.inputs.scribbles) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_no_snap_leaves_the_networks_outline(exported_small_models, picture: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    """--no-snap is the engine's snap_edges=False: the same round, the outline not moved."""
    from plugin.engine import MattingEngine
    from plugin.image_io import read_image
    from plugin.prompts import Prompts

    mattes = {}
    for name, flag in (("snap", []), ("raw", ["--no-snap"])):
        out = tmp_path / f"{name}.png"
        code, _, err = run(["matte", str(picture), "--click", "fg:60,45", "--models",
                            str(exported_small_models.models_dir), "--device", "cpu", "--out", str(out), *flag], capsys)
        assert code == 0, err
        mattes[name] = cv2.imread(str(out), cv2.IMREAD_UNCHANGED).astype(np.float32) / 255
    raw = MattingEngine(exported_small_models.models_dir, device="cpu", snap_edges=False).matte(
        read_image(picture), Prompts(clicks=[(60.0, 45.0, True)])).alpha
    assert np.abs(mattes["raw"] - raw).max() <= 1 / 255 + 1e-6
    assert np.abs(mattes["snap"] - mattes["raw"]).max() > 2 / 255


def test_sixteen_bit_input_gives_sixteen_bit_matte(exported_small_models, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    img16 = sample_image(64, 80, seed=12).astype(np.uint16) * 257
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), img16)
    out = tmp_path / "alpha16.png"
    code, _, err = run(["matte", str(src), "--click", "fg:40,30", "--models", str(exported_small_models.models_dir),
                        "--device", "cpu", "--out", str(out)], capsys)
    assert code == 0, err
    alpha = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint16 and alpha.shape == (64, 80)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--click", "fg:10"], "--click: '10' needs 2 numbers, got 1"),
        (["--click", "10,20"], "must start with fg: or bg:"),
        (["--box", "1,2,x,4"], "--box: '1,2,x,4' is not a list of numbers"),
        (["--scribble", "bg:"], "has no points"),
        (["--click", "fg:500,20"], "click 1: point (500, 20) is outside the 120x90 image"),
        (["--box", "50,50,10,10"], "is degenerate"),
        ([], "no inputs"),
        (["--click", "fg:nan,3"], "not finite"),
    ],
)
def test_bad_inputs_are_one_line_errors(exported_small_models, picture: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture, args: list[str], message: str) -> None:
    out = tmp_path / "alpha.png"
    code, stdout, err = run(["matte", str(picture), *args, "--models", str(exported_small_models.models_dir),
                             "--out", str(out)], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert not out.exists()


def test_unreadable_image_missing_models_and_bad_state(exported_small_models, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "alpha.png"
    models = ["--models", str(exported_small_models.models_dir)]
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    code, _, err = run(["matte", str(junk), "--click", "fg:1,1", *models, "--out", str(out)], capsys)
    assert code == 2 and "cannot read image" in err and str(junk) in err
    code, _, err = run(["matte", str(tmp_path / "none.png"), "--click", "fg:1,1", *models, "--out", str(out)], capsys)
    assert code == 2 and "image not found" in err
    good = tmp_path / "ok.png"
    cv2.imwrite(str(good), sample_image(40, 40))
    code, _, err = run(["matte", str(good), "--click", "fg:1,1", "--models", str(tmp_path / "nomodels"),
                        "--out", str(out)], capsys)
    assert code == 2 and "models folder not found" in err and "nomodels" in err
    bad_state = tmp_path / "state.json"
    bad_state.write_text("{not json")
    code, _, err = run(["matte", str(good), "--click", "fg:1,1", *models, "--state", str(bad_state),
                        "--out", str(out)], capsys)
    assert code == 2 and "round state is corrupt" in err
    assert bad_state.read_text() == "{not json"
    code, _, err = run(["matte", str(good), "--click", "fg:1,1", *models, "--out", str(tmp_path / "a.jpg")], capsys)
    assert code == 2 and ".png" in err
    assert not out.exists() and not (tmp_path / "a.jpg").exists()


def test_module_entry_point_exits_2_on_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "plugin", "matte", str(tmp_path / "x.png"), "--out", "a.png",
                           "--click", "fg:1"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error: ")
    proc = subprocess.run([sys.executable, "-m", "plugin", "matte"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0


def test_variant_picks_a_model_from_a_folder_of_both(exported_small_models, picture: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """`--variant base` takes models/base from a folder holding both sizes; small is the default."""
    import json
    import shutil

    root = tmp_path / "models"
    for variant in ("small", "base"):
        shutil.copytree(exported_small_models.models_dir, root / variant)
        manifest = json.loads((root / variant / "manifest.json").read_text())
        manifest.update(variant=variant, version=f"{variant}-test")
        (root / variant / "manifest.json").write_text(json.dumps(manifest))
    common = ["matte", str(picture), "--click", "fg:60,45", "--device", "cpu", "--models", str(root),
              "--out", str(tmp_path / "a.png")]
    code, stdout, err = run([*common, "--variant", "base"], capsys)
    assert code == 0, err
    assert "model: " in stdout and "base-test" in stdout
    code, stdout, err = run(common, capsys)
    assert code == 0 and "small-test" in stdout
    shutil.rmtree(root / "base")
    code, _, err = run([*common, "--variant", "base"], capsys)
    assert code == 2 and "not found" in err and "base" in err
