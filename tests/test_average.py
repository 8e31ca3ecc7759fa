"""Checkpoint averaging (training.average): the weighted mean of every weight, one model only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import build_dfimat, load_checkpoint, save_checkpoint
from model.checkpoint import trainable_state
from training.average import average_checkpoints, main


def _random_small(path: Path, seed: int, extra: dict) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    net = build_dfimat("small", text_encoder=False)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.num_batches_tracked.fill_(seed)
    save_checkpoint(net, path, extra=extra)
    return trainable_state(net)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict, dict]:
    work = tmp_path_factory.mktemp("average")
    a, b = work / "a.pt", work / "b.pt"
    state_a = _random_small(a, 1, {"stage": "mrn", "step": 10, "version": "small-aaaa", "metrics": {"sad": 1.0},
                                   "config": {"data": "/data/512"}})
    state_b = _random_small(b, 2, {"stage": "iscn", "step": 20, "config": {"data": "/data/1024"}})
    return a, b, state_a, state_b


def test_weighted_mean_of_every_weight(two_checkpoints, tmp_path: Path) -> None:
    a, b, state_a, state_b = two_checkpoints
    out = tmp_path / "avg.pt"
    record = average_checkpoints([a, b], out, weights=[3, 1])
    net, extra = load_checkpoint(out, text_encoder=False)
    state = trainable_state(net)
    floats = [k for k, v in state.items() if v.is_floating_point()]
    assert floats and any("running_mean" in k for k in floats)
    for key in floats:
        torch.testing.assert_close(state[key], 0.75 * state_a[key] + 0.25 * state_b[key], rtol=1e-5, atol=1e-6)
    counters = [k for k in state if k.endswith("num_batches_tracked")]
    assert counters and all(int(state[k]) == 1 for k in counters)  # the first checkpoint's
    # The record is the first checkpoint's, minus what described it alone, plus the sources.
    assert extra["stage"] == "mrn" and "version" not in extra and "metrics" not in extra
    assert extra["averaged"] == record["averaged"] == [
        {"path": str(a), "weight": 0.75, "version": "small-aaaa", "stage": "mrn", "step": 10, "data": "/data/512"},
        {"path": str(b), "weight": 0.25, "stage": "iscn", "step": 20, "data": "/data/1024"},
    ]


def test_averaging_an_average_keeps_every_run_in_the_record(two_checkpoints, tmp_path: Path) -> None:
    a, b, _, _ = two_checkpoints
    first = tmp_path / "avg.pt"
    average_checkpoints([a, b], first)
    # a continuation of the average, as a later training run records it
    net, _ = load_checkpoint(first, text_encoder=False)
    later = tmp_path / "later.pt"
    save_checkpoint(net, later, extra={"stage": "mrn", "step": 30, "iscn_training": {"step": 900},
                                       "config": {"data": "/data/new", "lr": 5e-5, "seed": 81,
                                                  "init": str(first)}})
    record = average_checkpoints([first, later], tmp_path / "again.pt")
    earlier, continuation = record["averaged"]
    assert [s["path"] for s in earlier["averaged"]] == [str(a), str(b)]  # the first average's runs
    assert continuation == {"path": str(later), "weight": 0.5, "stage": "mrn", "step": 30, "iscn_step": 900,
                            "data": "/data/new", "lr": 5e-5, "seed": 81, "init": str(first)}


def test_equal_weights_by_default(two_checkpoints, tmp_path: Path) -> None:
    a, b, state_a, state_b = two_checkpoints
    out = tmp_path / "avg.pt"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    state = trainable_state(load_checkpoint(out, text_encoder=False)[0])
    key = next(k for k, v in state.items() if v.is_floating_point() and v.abs().sum() > 0)
    torch.testing.assert_close(state[key], (state_a[key] + state_b[key]) / 2)


def test_refuses_other_models_and_bad_weights(two_checkpoints, tmp_path: Path, capsys) -> None:
    a, b, _, _ = two_checkpoints
    other = tmp_path / "ablation.pt"
    save_checkpoint(build_dfimat("small", text_encoder=False, mrn_branches="global"), other)
    with pytest.raises(ValueError, match="another config"):
        average_checkpoints([a, other], tmp_path / "x.pt")
    with pytest.raises(ValueError, match="2 weights for 3 checkpoints"):
        average_checkpoints([a, b, a], tmp_path / "x.pt", weights=[1, 1])
    with pytest.raises(ValueError, match=">= 0"):
        average_checkpoints([a, b], tmp_path / "x.pt", weights=[1, -1])
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([a], tmp_path / "x.pt")
    assert main([str(a), str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "error: checkpoint not found" in capsys.readouterr().err
    assert not (tmp_path / "x.pt").exists()
