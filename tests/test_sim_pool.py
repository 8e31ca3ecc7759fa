"""The simulated users' work moved off the training step: round 1 drawn with each item (in the
data loader) and later rounds' corrections in worker processes give exactly the inputs, and so
the losses, of doing it all in the training process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from plugin.prompts import Prompts
from training.sim_pool import CorrectionPool
from training.simulate import UserSimulator, corrective_inputs
from training.train import main
from training.train_data import InstanceDataset
from training.train_steps import RoundPlan


def person(h: int, w: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    a = np.zeros((h, w), np.float32)
    a[y0:y1, x0:x1] = 1.0
    a[y0 - 6 : y0, (x0 + x1) // 2 - 5 : (x0 + x1) // 2 + 5] = 0.7  # a soft "head"
    return a


def jobs() -> list[tuple[UserSimulator, np.ndarray, np.ndarray, int]]:
    """Corrections of every kind: misses, false positives, a right answer, a non-square image."""
    out = []
    for j, mode in enumerate(["click", "scribble", "mix", "mix", "click", "scribble"]):
        h, w = (80, 120) if j % 2 else (96, 96)
        gt = person(h, w, 20 + j, 20, 50 + 2 * j, 70)
        pred = np.roll(gt, 7 + j, axis=1) * 0.9
        pred[5:15, 80:90] = 1.0  # a false positive far away
        out.append((UserSimulator(mode, seed=j), gt, pred, 2 + j % 3))
    gt = person(64, 64, 10, 12, 40, 60)
    out.append((UserSimulator("click", 9), gt, gt.copy(), 2))  # already right: no new inputs
    return out


def test_pool_gives_exactly_what_next_round_gives() -> None:
    expected = [sim.next_round(gt, pred, k) for sim, gt, pred, k in jobs()]
    assert expected[-1] == Prompts() and all(not p.is_empty() for p in expected[:-1])
    assert CorrectionPool(0).correct(jobs()) == expected
    with CorrectionPool(2) as pool:
        assert pool.correct(jobs()) == expected
        assert pool.correct(jobs()[:1]) == expected[:1]


def test_pool_checks_inputs_in_the_calling_process() -> None:
    gt = person(64, 64, 10, 12, 40, 60)
    bad = [(UserSimulator("click", 0), gt, np.zeros((32, 32), np.float32), 2)] * 2
    with CorrectionPool(2) as pool, pytest.raises(ValueError, match="differs from gt"):
        pool.correct(bad)
    with pytest.raises(ValueError, match="single round"):
        CorrectionPool(2).correct([(UserSimulator("box", 0), gt, gt, 2)] * 2)
    with pytest.raises(ValueError, match="clicks or scribbles"):
        corrective_inputs("box", 1, gt > 0.5, gt > 0.5)
    with pytest.raises(ValueError, match="workers"):
        CorrectionPool(-1)


class Scene:
    """Two people side by side, with descriptions."""

    name = "scene"
    image = np.full((96, 96, 3), 120, np.uint8)
    alphas = np.stack([person(96, 96, 10, 30, 35, 90), person(96, 96, 55, 30, 80, 90)])
    texts = ["the left person", "the right person"]


def test_items_carry_their_user_drawn_per_seed_epoch_and_index() -> None:
    ds = InstanceDataset([Scene()] * 4, 96, seed=3, inputs=["click", "scribble", "box", "mix"], negative_prob=0.0)
    a, b = ds[1], ds[1]
    assert a.user is not None and a.user.is_person == 1.0 and a.user.gt is a.target
    assert a.user.first == b.user.first and a.user.sim.mode == b.user.sim.mode  # reproducible
    assert not a.user.first.is_empty()
    users = []
    for epoch in range(6):
        users.append((ds[(epoch, 1)].user.sim.mode, ds[(epoch, 1)].user.sim.seed))
    assert len(set(users)) > 1, "a new epoch draws a new user"
    assert ds[(0, 1)].user.first == a.user.first  # a plain index is epoch 0
    negative = InstanceDataset([Scene()], 96, inputs=["click"], negative_prob=1.0)[0].user
    assert negative.is_person == 0.0 and not negative.gt.any() and negative.first.clicks
    assert InstanceDataset([Scene()], 96)[0].user is None
    from training.train_data import collate

    with pytest.raises(ValueError, match="inputs="):
        RoundPlan(collate([InstanceDataset([Scene()], 96)[0]]))


TINY = ["--synth", "scene", "--synth-count", "6", "--synth-size", "96", "--size", "96", "--batch-size", "3",
        "--inputs", "click", "scribble", "box", "--seed", "1", "--log-every", "1", "--max-rounds", "3",
        "--steps", "4", "--negative-prob", "0.2"]


def test_training_is_the_same_with_worker_processes(tmp_path: Path) -> None:
    """Data loader workers drawing round 1 and correction workers for rounds 2+ change nothing."""
    torch.set_num_threads(2)
    logs = []
    for name, extra in (("inline", []), ("workers", ["--workers", "1", "--sim-workers", "2"])):
        out = tmp_path / name
        assert main(["iscn", *TINY, "--out", str(out), *extra]) == 0
        rows = [json.loads(line) for line in (out / "iscn_log.jsonl").read_text().splitlines()]
        logs.append([(r["rounds"], r["total"]) for r in rows])
    assert any(rounds >= 2 for rounds, _ in logs[0]), "some step reached the corrected rounds"
    assert logs[1] == pytest.approx(logs[0], rel=1e-5)
