"""Evaluation (training/evaluate.py): the protocol, the report files, and numbers that agree
with training.metrics on the saved predictions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from plugin.prompts import Prompts
from training import metrics
from training.data import MattingDataset
from training.evaluate import evaluate, main, slug, target_shape, unique_names
from training.predictors import (
    BaselinePredictor,
    OnnxPredictor,
    Prediction,
    Predictor,
    TorchPredictor,
    open_predictor,
)
from training.report import aggregate, markdown_table


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.synth import generate

    return generate(tmp_path_factory.mktemp("evaldata"), 2, seed=3, size=(64, 64), mode="scene", workers=1, progress=False)


class Recorder(Predictor):
    """Returns a fixed answer per round and remembers every prompt it was given."""

    def __init__(self, name: str, answer):
        self.name = name
        self.answer = answer
        self.seen: list[Prompts] = []

    def predict(self, image: np.ndarray, prompts: Prompts, state: Any | None) -> Prediction:
        self.seen.append(prompts)
        k = 1 if state is None else state + 1
        return Prediction(self.answer(image, prompts, k), k)


def test_cli_writes_json_table_and_plot_consistent_with_metrics(small_checkpoint: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    rc = main(["--models", str(small_checkpoint), "--data", str(data), "--inputs", "click", "box", "mix",
               "--rounds", "2", "--out", str(out), "--noc-max", "2", "--save-predictions", "--seed", "1",
               "--limit", "1", "--baseline"])
    assert rc == 0
    report = json.loads((out / "report.json").read_text())
    ds = MattingDataset(data)
    n_targets = int((ds[0].alphas > 0.5).any(axis=(1, 2)).sum())
    assert report["protocol"]["targets"] == n_targets > 0
    method = small_checkpoint.stem
    summary = report["summary"][method]
    assert [r["round"] for r in summary["click"]["rounds"]] == [1, 2]
    assert [r["round"] for r in summary["mix"]["rounds"]] == [1, 2]
    assert [r["round"] for r in summary["box"]["rounds"]] == [1], "box is a single round"
    assert 1 <= summary["click"]["noc90"] <= 2
    # Each record agrees with training.metrics on the saved prediction, and the summary with the records.
    gts = {ds[i].name: ds[i].alphas for i in range(len(ds))}
    for rec in report["records"]:
        saved = np.load(out / "predictions" / slug(rec["method"]) / rec["mode"] / f"{slug(rec['image'])}__{rec['instance']:02d}.npz")
        pred, gt = saved["alphas"][rec["round"] - 1], gts[rec["image"]][rec["instance"]]
        assert rec["sad"] == pytest.approx(metrics.sad(pred, gt), rel=1e-6, abs=1e-9)
        assert rec["mse"] == pytest.approx(metrics.mse(pred, gt), rel=1e-6, abs=1e-12)
        assert rec["grad"] == pytest.approx(metrics.grad(pred, gt), rel=1e-6, abs=1e-9)
        assert rec["conn"] == pytest.approx(metrics.conn(pred, gt), rel=1e-6, abs=1e-9)
        assert rec["iou"] == pytest.approx(metrics.iou(pred, gt), rel=1e-6, abs=1e-9)
    for mode in ("click", "box", "mix"):
        for row in summary[mode]["rounds"]:
            recs = [r for r in report["records"]
                    if r["method"] == method and r["mode"] == mode and r["round"] == row["round"]]
            assert row["targets"] == len(recs) == n_targets
            assert row["sad"] == pytest.approx(np.mean([r["sad"] for r in recs]))
    table = (out / "table.md").read_text()
    final_click = summary["click"]["final"]
    assert f"| {method} | click | 2 | {final_click['sad']:.2f} | {final_click['mse'] * 100:.3f} |" in table
    assert "MSE (x1e2)" in table and "| box | 1 |" in table
    assert report["protocol"]["methods"] == [method, "classical baseline"]
    base = report["summary"]["classical baseline"]
    assert [r["round"] for r in base["click"]["rounds"]] == [1, 2] and 1 <= base["click"]["noc90"] <= 2
    assert "| classical baseline | mix | 2 |" in table
    png = cv2.imread(str(out / "sad_per_round.png"))
    assert png is not None and png.shape[2] == 3 and png.std() > 0


def test_every_method_gets_the_same_inputs_and_scores_follow_predictions(data: Path) -> None:
    ds = MattingDataset(data)
    twin = Recorder("also empty", lambda img, p, k: np.zeros(img.shape[:2], np.float32))
    empty = Recorder("always empty", lambda img, p, k: np.zeros(img.shape[:2], np.float32))
    records, noc, targets = evaluate([twin, empty], ds, ["click", "text"], rounds=3, seed=4,
                                     noc_max_clicks=4, progress=False)
    assert twin.seen == empty.seen, "same predictions => same simulated inputs for every method"
    assert {m: [t["clicks"] for t in ts] for m, ts in noc.items()} == {"also empty": [4] * targets,
                                                                        "always empty": [4] * targets}
    assert all(t["ious"] == [0.0] * 4 for t in noc["always empty"])
    summary = aggregate(records)
    assert [r["round"] for r in summary["always empty"]["click"]["rounds"]] == [1, 2, 3]
    assert [r["round"] for r in summary["always empty"]["text"]["rounds"]] == [1]
    first_prompts = [p for p in empty.seen if len(p.clicks) == 3 and not p.texts]
    assert first_prompts, "round 1 of click mode has 3 clicks"


def test_better_predictions_score_better_and_reach_noc_early(data: Path) -> None:
    ds = MattingDataset(data)
    gts = {}
    for i in range(len(ds)):
        s = ds[i]
        for a in s.alphas:
            gts[hash(s.image.tobytes())] = gts.get(hash(s.image.tobytes()), []) + [a]

    def oracle(img, prompts, k):
        """The instance whose core holds the first click (the target), exact from round 2."""
        x, y, _ = prompts.clicks[0]
        for a in gts[hash(img.tobytes())]:
            if a[int(y), int(x)] > 0.5:
                return a if k >= 2 else (a > 0.5).astype(np.float32) * 0.8
        raise AssertionError("first click is not on a person")

    good = Recorder("oracle", oracle)
    bad = Recorder("empty", lambda img, p, k: np.zeros(img.shape[:2], np.float32))
    records, noc, _ = evaluate([good, bad], ds, ["click"], rounds=2, seed=0, noc_max_clicks=5, progress=False)
    s = aggregate(records)
    assert s["oracle"]["click"]["rounds"][1]["sad"] == pytest.approx(0.0, abs=1e-9)
    assert s["oracle"]["click"]["rounds"][0]["sad"] > 0.0
    assert s["empty"]["click"]["final"]["sad"] > s["oracle"]["click"]["final"]["sad"]
    assert all(t["clicks"] <= 2 and t["ious"][-1] >= 0.9 for t in noc["oracle"])
    assert all(t["clicks"] == 5 for t in noc["empty"])
    assert "| oracle | click | 2 | 0.00 |" in markdown_table(s)


def test_target_shape_measures_size_and_the_partly_transparent_share() -> None:
    gt = np.zeros((10, 10), np.float32)
    gt[2:6, 2:6] = 1.0  # 16 opaque pixels
    gt[6, 2:6] = 0.5  # 4 half-transparent ones: counted by IoU (>= 0.5) and soft
    gt[7, 2:6] = 0.2  # 4 faint ones: soft, not counted by IoU
    assert target_shape(gt) == {"area": 0.2, "soft": pytest.approx(8 / 24, abs=1e-4)}
    assert target_shape(np.ones((4, 4), np.float32)) == {"area": 1.0, "soft": 0.0}


def test_clear_errors(tmp_path: Path, data: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        open_predictor(tmp_path / "missing.pt")
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        open_predictor(tmp_path)
    (tmp_path / "x.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match="neither"):
        open_predictor(tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="inputs must be"):
        evaluate([], MattingDataset(data), ["lasso"])
    assert main(["--data", str(data), "--out", str(tmp_path / "r")]) == 2


def test_onnx_folder_matches_its_checkpoint_and_baseline_runs_the_same_protocol(exported_small_models, data: Path) -> None:
    onnx = open_predictor(exported_small_models.models_dir, device="cpu")
    assert isinstance(onnx, OnnxPredictor)
    torch_pred = TorchPredictor(exported_small_models.checkpoint, device="cpu", text=False, name="torch")
    base = BaselinePredictor()
    sample = MattingDataset(data)[0]
    sample.alphas = sample.alphas[:1]  # one target keeps this test quick
    records, noc, n = evaluate([torch_pred, onnx, base], [sample], ["click", "box"], rounds=2, noc_max_clicks=0,
                               progress=False)
    assert noc == {} and n == 1
    by = {(r["method"], r["mode"], r["instance"], r["round"]): r for r in records}
    assert len(records) == 3 * (2 + 1)
    for (method, mode, inst, rnd), r in by.items():
        if method == onnx.name and rnd == 1:  # same inputs, same weights: the engine equals PyTorch
            t = by[("torch", mode, inst, rnd)]
            for m in ("sad", "mse", "iou"):
                assert r[m] == pytest.approx(t[m], rel=2e-2, abs=2e-3), (mode, inst, m)
    s = aggregate(records)
    assert s[base.name]["click"]["final"]["round"] == 2 and s[base.name]["box"]["final"]["round"] == 1


def assert_flag_is_recorded(checkpoint: Path, data: Path, tmp_path: Path, flag: str, key: str) -> None:
    """A run with ``flag`` scores otherwise than one without, and the protocol's ``key`` says which."""
    common = ["--models", f"net={checkpoint}", "--data", str(data), "--inputs", "click", "--rounds", "1",
              "--noc-max", "0", "--limit", "1"]
    assert main([*common, flag, "--out", str(tmp_path / "with")]) == 0
    assert main([*common, "--out", str(tmp_path / "without")]) == 0
    with_, without = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("with", "without"))
    assert with_["protocol"][key] is False and without["protocol"][key] is True
    assert [r["sad"] for r in with_["records"]] != [r["sad"] for r in without["records"]]


def test_raw_alpha_scores_the_network_without_keeping_the_inputs(small_checkpoint: Path, data: Path,
                                                                 tmp_path: Path) -> None:
    """--raw-alpha (reports before stop 24) differs from the default only by the kept input pixels."""
    from plugin.input_constraints import keep_inputs

    sample = MattingDataset(data)[0]
    h, w = sample.image.shape[:2]
    prompts = Prompts(clicks=[(w / 2, h / 2, True), (5.0, 5.0, False)], scribbles=[([(10.0, h - 10.0), (w / 3, h - 10.0)], True)])
    kept = TorchPredictor(small_checkpoint, device="cpu", text=False).predict(sample.image, prompts, None)
    raw = TorchPredictor(small_checkpoint, device="cpu", text=False, keep_inputs=False).predict(sample.image, prompts, None)
    assert np.array_equal(kept.alpha, keep_inputs(raw.alpha, prompts))
    assert kept.alpha[h // 2, w // 2] == 1.0 and kept.alpha[5, 5] == 0.0 and kept.alpha[h - 10, 20] == 1.0
    assert not np.array_equal(kept.alpha, raw.alpha)

    assert_flag_is_recorded(small_checkpoint, data, tmp_path, "--raw-alpha", "inputs_kept")


def test_no_snap_scores_the_outline_where_mrn_put_it(small_checkpoint: Path, data: Path, tmp_path: Path) -> None:
    """--no-snap (reports before stop 30) differs from the default only by the edge snapping
    (plugin.edge_snap), applied as the engine applies it, and the protocol says which."""
    from plugin.edge_snap import snap_to_edges

    sample = MattingDataset(data)[0]
    h, w = sample.image.shape[:2]
    prompts = Prompts(clicks=[(w / 2, h / 2, True)])
    snapped = TorchPredictor(small_checkpoint, device="cpu", text=False, keep_inputs=False)
    raw = TorchPredictor(small_checkpoint, device="cpu", text=False, keep_inputs=False, snap_edges=False)
    a, b = snapped.predict(sample.image, prompts, None), raw.predict(sample.image, prompts, None)
    view_scale = max(h, w) / snapped.net.iscn.image_size  # round 1 with a click: the whole image
    assert np.abs(a.alpha - snap_to_edges(b.alpha, sample.image, view_scale)).max() <= 1e-6
    assert np.abs(a.alpha - b.alpha).max() > 1e-3

    assert_flag_is_recorded(small_checkpoint, data, tmp_path, "--no-snap", "edges_snapped")


def test_checkpoints_zoom_in_as_their_export_does(exported_small_models, tmp_path: Path) -> None:
    """TorchPredictor mirrors the engine's frames (plugin.focus), so a checkpoint scores as its
    export on images big enough to zoom into; --no-focus turns it off for both and says so."""
    from tests.export_fixtures import sample_image

    image = sample_image(600, 800, seed=9)
    rounds = [Prompts(boxes=[(150, 100, 260, 300)]), Prompts(clicks=[(200, 200, True), (780, 20, False)])]
    for focus in (True, False):
        onnx = OnnxPredictor(exported_small_models.models_dir, device="cpu", focus=focus)
        torch_pred = TorchPredictor(exported_small_models.checkpoint, device="cpu", text=False, focus=focus)
        prompts, states, frames = Prompts(), [None, None], []
        for new in rounds:
            prompts = prompts.merged(new)
            a, b = onnx.predict(image, prompts, states[0]), torch_pred.predict(image, prompts, states[1])
            states = [a.state, b.state]
            assert np.abs(a.alpha - b.alpha).mean() < 2e-3, focus
            assert b.state[1].as_list() == a.state.extra["frame"]
            frames.append(a.state.extra["frame"])
        assert (frames[0] == [0, 0, 800, 600]) is (not focus)  # round 1 has a box to zoom into

    data = tmp_path / "d"
    from training.synth import generate

    generate(data, 1, seed=5, size=(96, 96), mode="scene", workers=1, progress=False)
    common = ["--models", f"net={exported_small_models.checkpoint}", "--data", str(data), "--inputs", "box",
              "--noc-max", "0"]
    assert main([*common, "--no-focus", "--out", str(tmp_path / "flat")]) == 0
    assert main([*common, "--out", str(tmp_path / "zoom")]) == 0
    flat, zoom = (json.loads((tmp_path / d / "report.json").read_text())["protocol"] for d in ("flat", "zoom"))
    assert flat["focus"] is False and zoom["focus"] is True


def test_same_checkpoint_names_from_two_runs_are_told_apart(tmp_path: Path) -> None:
    a, b = Recorder("mrn_last", None), Recorder("mrn_last", None)
    c = Recorder("other", None)
    unique_names([a, b, c], [str(tmp_path / "runA" / "mrn_last.pt"), str(tmp_path / "runB" / "mrn_last.pt"), "x.pt"])
    assert (a.name, b.name, c.name) == ("runA/mrn_last", "runB/mrn_last", "other")


def test_models_can_be_named_on_the_command_line(tmp_path) -> None:
    from training.evaluate import split_name

    assert split_name("DFIMat-S=models/small") == ("DFIMat-S", "models/small")
    odd = tmp_path / "a=b"
    odd.mkdir()
    assert split_name(str(odd)) == (None, str(odd))  # an existing path is a path, '=' and all
    with pytest.raises(ValueError, match="empty model name"):
        split_name("=models/small")


def test_reports_of_the_same_protocol_merge_into_the_report_of_one_run(small_checkpoint: Path, data: Path,
                                                                     tmp_path: Path) -> None:
    """A model scored later beside an earlier report gives the numbers one joint run would have."""
    from training.report import main as report_main

    common = ["--data", str(data), "--inputs", "click", "mix", "--rounds", "2", "--noc-max", "2", "--seed", "1"]
    assert main(["--baseline", *common, "--out", str(tmp_path / "a")]) == 0
    assert main(["--models", f"net={small_checkpoint}", *common, "--out", str(tmp_path / "b")]) == 0
    assert main(["--models", f"net={small_checkpoint}", "--baseline", *common, "--out", str(tmp_path / "joint")]) == 0
    assert report_main(["--merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "merged")]) == 0
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    joint = json.loads((tmp_path / "joint" / "report.json").read_text())
    assert merged["summary"] == joint["summary"]
    key = lambda r: (r["method"], r["mode"], r["image"], r["instance"], r["round"])  # noqa: E731
    assert sorted(merged["records"], key=key) == sorted(joint["records"], key=key)
    tkey = lambda t: (t["method"], t["image"], t["instance"])  # noqa: E731
    assert sorted(merged["noc_per_target"], key=tkey) == sorted(joint["noc_per_target"], key=tkey)
    assert {t["method"] for t in joint["noc_per_target"]} == {"net", "classical baseline"}
    assert " ; " in merged["protocol"]["command"] and len(merged["protocol"]["merged_from"]) == 2
    assert (tmp_path / "merged" / "sad_per_round.png").is_file()

    assert main(["--baseline", *common[:-4], "--noc-max", "2", "--seed", "2", "--out", str(tmp_path / "c")]) == 0
    assert report_main(["--merge", str(tmp_path / "b"), str(tmp_path / "c"), "--out", str(tmp_path / "x")]) == 2
    assert report_main(["--merge", str(tmp_path / "a"), str(tmp_path / "joint"), "--out", str(tmp_path / "y")]) == 2


def test_shares_of_one_run_join_into_the_report_of_the_whole_run(small_checkpoint: Path, data: Path,
                                                                 tmp_path: Path) -> None:
    """--images splits a slow run over cores; --join puts the shares back: the same records,
    averages, NoC@90 and protocol as one run over every image. Gaps, overlaps and other methods
    are refused, and a share is never merged as if it were a whole run."""
    from training.report import main as report_main

    common = ["--models", f"net={small_checkpoint}", "--baseline", "--data", str(data), "--inputs", "click", "box",
              "--rounds", "2", "--noc-max", "2"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--images", "1:2", "--out", str(tmp_path / "second")]) == 0
    assert main([*common, "--images", "0:1", "--out", str(tmp_path / "first")]) == 0
    # given in either order, the shares are joined in image order
    assert report_main(["--join", str(tmp_path / "second"), str(tmp_path / "first"), "--out", str(tmp_path / "j")]) == 0
    joined = json.loads((tmp_path / "j" / "report.json").read_text())
    whole = json.loads((tmp_path / "whole" / "report.json").read_text())
    assert joined["summary"] == whole["summary"] and joined["summary"]["net"]["click"]["noc_targets"] == 5
    tkey = lambda t: (t["method"], t["image"], t["instance"])  # noqa: E731
    assert joined["records"] == whole["records"]
    assert sorted(joined["noc_per_target"], key=tkey) == sorted(whole["noc_per_target"], key=tkey)
    for key in ("images", "targets", "inputs", "methods", "noc_max_clicks"):
        assert joined["protocol"][key] == whole["protocol"][key]
    assert "first_image" not in joined["protocol"] and len(joined["protocol"]["commands"]) == 2
    share = json.loads((tmp_path / "second" / "report.json").read_text())["protocol"]
    assert (share["first_image"], share["images"]) == (1, 1)

    # the joined report merges like a whole run; a share does not
    assert main(["--models", f"other={small_checkpoint}", *common[3:], "--out", str(tmp_path / "other")]) == 0
    assert report_main(["--merge", str(tmp_path / "j"), str(tmp_path / "other"), "--out", str(tmp_path / "m")]) == 0
    assert report_main(["--merge", str(tmp_path / "first"), str(tmp_path / "second"), "--out", str(tmp_path / "x")]) == 2

    assert report_main(["--join", str(tmp_path / "first"), str(tmp_path / "first"), "--out", str(tmp_path / "x")]) == 2
    assert report_main(["--join", str(tmp_path / "second"), str(tmp_path / "whole"), "--out", str(tmp_path / "x")]) == 2
    assert report_main(["--join", str(tmp_path / "first"), str(tmp_path / "other"), "--out", str(tmp_path / "x")]) == 2
    assert main([*common, "--images", "5:9", "--out", str(tmp_path / "x")]) == 2
    with pytest.raises(SystemExit):  # argparse's own exit, status 2, naming --images
        main([*common, "--images", "1:1", "--out", str(tmp_path / "x")])


def test_a_re_scored_model_replaces_its_rows_only_when_asked(tmp_path: Path) -> None:
    """--replace: a retrained model scored again takes the place of its earlier rows; the
    baseline's rows stay, and the protocol names what was replaced."""
    from training.report import aggregate, write_report
    from training.report import main as report_main

    protocol = {"data": "/x/test384", "subset": None, "images": 1, "targets": 1, "inputs": ["click"], "rounds": 1,
                "seed": 0, "noc_threshold": 0.9, "noc_max_clicks": 0, "seconds": 1.0}

    def rec(method: str, sad: float) -> dict:
        return {"method": method, "mode": "click", "image": "a", "instance": 0, "round": 1, "sad": sad, "mse": 0.0,
                "grad": 0.0, "conn": sad, "iou": 0.5}

    old, new = [rec("net", 9.0), rec("base", 5.0)], [rec("net", 2.0)]
    write_report(tmp_path / "old", aggregate(old), old, {**protocol, "command": "old run", "methods": ["net", "base"]})
    write_report(tmp_path / "new", aggregate(new), new, {**protocol, "command": "new run"})
    args = ["--merge", str(tmp_path / "old"), str(tmp_path / "new"), "--out"]
    assert report_main([*args, str(tmp_path / "refused")]) == 2
    assert report_main([*args, str(tmp_path / "merged"), "--replace"]) == 0
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["summary"] == aggregate([rec("net", 2.0), rec("base", 5.0)])
    assert sorted((r["method"], r["sad"]) for r in merged["records"]) == [("base", 5.0), ("net", 2.0)]
    assert merged["protocol"]["methods"] == ["net", "base"] and "net from" in merged["protocol"]["replaced"][0]
    # the old run still made base's rows: its command stays, with only base to its name
    assert merged["protocol"]["command"] == "old run ; new run" and merged["protocol"]["seconds"] == 2.0
    assert [e["methods"] for e in merged["protocol"]["commands"]] == [["base"], ["net"]]

    # The merged report merged again with base re-scored: it still says where net's rows came from.
    newer = [rec("base", 4.0)]
    write_report(tmp_path / "newer", aggregate(newer), newer, {**protocol, "command": "newer run"})
    assert report_main(["--merge", str(tmp_path / "merged"), str(tmp_path / "newer"), "--out",
                        str(tmp_path / "again"), "--replace"]) == 0
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert sorted((r["method"], r["sad"]) for r in again["records"]) == [("base", 4.0), ("net", 2.0)]
    assert sorted(again["protocol"]["replaced"]) == [f"base from {tmp_path / 'newer'}", f"net from {tmp_path / 'new'}"]
    # no row of the old run is left: its command goes, and so do its seconds
    assert again["protocol"]["command"] == "new run ; newer run" and again["protocol"]["seconds"] == 2.0


def test_a_merge_keeps_how_the_models_ran_only_where_its_parts_agree(tmp_path: Path) -> None:
    """inputs_kept and focus describe how rows were made: a merge of reports that disagree says
    neither rather than claim one for all rows."""
    from training.report import aggregate, merge_reports, write_report

    protocol = {"data": "/x/test1024", "subset": None, "images": 1, "targets": 1, "inputs": ["box"], "rounds": 1,
                "seed": 0, "noc_threshold": 0.9, "noc_max_clicks": 0, "seconds": 1.0, "inputs_kept": True}
    rows = {m: [{"method": m, "mode": "box", "image": "a", "instance": 0, "round": 1, "sad": 1.0, "mse": 0.0,
                 "grad": 0.0, "conn": 1.0, "iou": 0.5}] for m in ("a", "b", "c")}
    write_report(tmp_path / "a", aggregate(rows["a"]), rows["a"], {**protocol, "focus": True})
    write_report(tmp_path / "b", aggregate(rows["b"]), rows["b"], {**protocol, "focus": True})
    write_report(tmp_path / "c", aggregate(rows["c"]), rows["c"], dict(protocol))  # before focus existed
    merge_reports([tmp_path / "a", tmp_path / "b"], tmp_path / "ab")
    merge_reports([tmp_path / "a", tmp_path / "c"], tmp_path / "ac")
    ab, ac = (json.loads((tmp_path / d / "report.json").read_text())["protocol"] for d in ("ab", "ac"))
    assert ab["focus"] is True and ab["inputs_kept"] is True
    assert "focus" not in ac and ac["inputs_kept"] is True


def test_a_merge_accepts_input_types_listed_in_another_order_but_not_other_types(tmp_path: Path) -> None:
    """Every (target, input type) gets a fresh simulated user, so ``--inputs click box`` and
    ``--inputs box click`` score the same protocol; a different set of types does not."""
    import pytest

    from training.report import aggregate, merge_reports, write_report

    protocol = {"data": "/x/test384", "subset": None, "images": 1, "targets": 1, "rounds": 1, "seed": 0,
                "noc_threshold": 0.9, "noc_max_clicks": 0, "seconds": 1.0}

    def rows(m: str, modes: tuple[str, ...]) -> list[dict]:
        return [{"method": m, "mode": mode, "image": "a", "instance": 0, "round": 1, "sad": 1.0, "mse": 0.0,
                 "grad": 0.0, "conn": 1.0, "iou": 0.5} for mode in modes]

    for name, m, modes in (("a", "a", ("click", "box")), ("b", "b", ("box", "click")), ("c", "c", ("box", "text"))):
        write_report(tmp_path / name, aggregate(rows(m, modes)), rows(m, modes), {**protocol, "inputs": list(modes)})
    merge_reports([tmp_path / "a", tmp_path / "b"], tmp_path / "ab")
    merged = json.loads((tmp_path / "ab" / "report.json").read_text())
    assert merged["protocol"]["inputs"] == ["click", "box"]
    assert sorted({r["method"] for r in merged["records"]}) == ["a", "b"]
    with pytest.raises(ValueError, match="differs .* in inputs"):
        merge_reports([tmp_path / "a", tmp_path / "c"], tmp_path / "ac")
