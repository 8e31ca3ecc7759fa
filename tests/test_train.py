"""Decoupled training (training/train.py) on tiny synthetic data, on CPU: both stages learn,
checkpoints carry what resuming and evaluation need, and a resumed run equals an unbroken one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from model import load_checkpoint
from training.train import main
from training.train_config import TrainConfig, config_from_args
from training.train_steps import perturb_mask

TINY = ["--synth", "scene", "--synth-count", "8", "--synth-size", "96", "--size", "96", "--batch-size", "2",
        "--inputs", "click", "--seed", "0", "--log-every", "1"]


def log(run: Path, stage: str) -> list[dict]:
    return [json.loads(line) for line in (run / f"{stage}_log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ISCN for 8 steps, then MRN for 6 steps on the frozen ISCN (about 25 s of CPU)."""
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("run")
    assert main(["iscn", *TINY, "--out", str(out), "--steps", "8", "--max-rounds", "2",
                 "--negative-prob", "0.2", "--lr", "1e-3"]) == 0
    assert main(["mrn", *TINY, "--out", str(out), "--steps", "6", "--max-rounds", "2",
                 "--iscn", str(out / "iscn_last.pt"), "--lr", "1e-3"]) == 0
    return out


def first_last(losses: list[float], k: int = 3) -> tuple[float, float]:
    return float(np.mean(losses[:k])), float(np.mean(losses[-k:]))


def test_iscn_loss_goes_down(run: Path) -> None:
    rows = log(run, "iscn")
    assert [r["step"] for r in rows] == list(range(1, 9))
    first, last = first_last([r["total"] for r in rows])
    print(f"ISCN loss: first 3 steps {first:.4f}, last 3 steps {last:.4f}")
    assert last < 0.95 * first, f"ISCN did not learn: {first:.4f} -> {last:.4f}"
    for r in rows:  # the parts are all there and the total is their weighted sum
        assert r["total"] == pytest.approx(0.1 * r["class"] + r["bce"] + r["dice"] + r["aux"], rel=1e-4)
    assert {r["rounds"] for r in rows} <= {1.0, 2.0} and 2.0 in {r["rounds"] for r in rows}
    assert rows[-1]["lr"] < rows[0]["lr"], "cosine schedule decays"


def test_mrn_loss_goes_down_and_iscn_stays_frozen(run: Path) -> None:
    rows = log(run, "mrn")
    first, last = first_last([r["total"] for r in rows])
    print(f"MRN loss: first 3 steps {first:.4f}, last 3 steps {last:.4f}")
    assert last < 0.95 * first, f"MRN did not learn: {first:.4f} -> {last:.4f}"
    iscn, _ = load_checkpoint(run / "iscn_last.pt", text_encoder=False)
    full, extra = load_checkpoint(run / "mrn_last.pt", text_encoder=False)
    for (k, a), b in zip(iscn.iscn.state_dict().items(), full.iscn.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"ISCN weight {k} changed while training MRN"
    changed = [not torch.equal(a, b) for a, b in zip(iscn.mrn.state_dict().values(), full.mrn.state_dict().values(), strict=True)]
    assert any(changed)
    assert extra["stage"] == "mrn" and extra["step"] == 6 and extra["iscn_checkpoint"].endswith("iscn_last.pt")
    assert extra["config"]["size"] == 96 and extra["data"]["synth"] == "scene"
    assert extra["iscn_training"]["step"] == 8 and extra["iscn_training"]["config"]["stage"] == "iscn"
    assert "total" in extra["metrics"]
    assert (run / "mrn_last.state.pt").is_file()


def test_resume_continues_exactly_where_an_unbroken_run_would(run: Path, tmp_path: Path) -> None:
    common = ["mrn", *TINY, "--iscn", str(run / "iscn_last.pt"), "--max-rounds", "1", "--batch-size", "1"]
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert main([*common, "--out", str(whole), "--steps", "2"]) == 0
    assert main([*common, "--out", str(broken), "--steps", "2", "--stop-at", "1"]) == 0  # the job "dies" at 1
    _, extra = load_checkpoint(broken / "mrn_last.pt", text_encoder=False)
    assert extra["step"] == 1
    assert main([*common, "--out", str(broken), "--steps", "2", "--resume"]) == 0
    a = [r["total"] for r in log(whole, "mrn")]
    b = [r["total"] for r in log(broken, "mrn")]
    assert [r["step"] for r in log(broken, "mrn")] == [1, 2]
    assert b == pytest.approx(a, rel=1e-5, abs=1e-6)
    _, extra = load_checkpoint(broken / "mrn_last.pt", text_encoder=False)
    assert extra["step"] == 2


def test_a_resumed_epoch_never_loads_the_batches_it_skips() -> None:
    """The sampler drops a resumed epoch's first batches before the loader asks the dataset for
    them, and the batches after them are the unbroken run's."""
    from torch.utils.data import DataLoader, RandomSampler

    from training.train_data import EpochSampler

    class Recording(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.asked: list[tuple[int, int]] = []

        def __len__(self) -> int:
            return 10

        def __getitem__(self, key: tuple[int, int]) -> int:
            self.asked.append(key)
            return key[1]

    def batches(skip: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
        data = Recording()
        generator = torch.Generator().manual_seed(7)
        sampler = EpochSampler(RandomSampler(range(10), generator=generator))
        sampler.set_epoch(3, skip)
        generator.manual_seed(7 + 3)
        loader = DataLoader(data, batch_size=3, sampler=sampler, drop_last=True, collate_fn=list)
        return [list(b) for b in loader], data.asked

    whole, asked_whole = batches(0)
    resumed, asked_resumed = batches(2 * 3)
    assert len(whole) == 3 and resumed == whole[2:]
    assert len(asked_resumed) == 3 and asked_resumed == asked_whole[6:9]
    assert all(epoch == 3 for epoch, _ in asked_resumed)
    with pytest.raises(ValueError, match="skip"):
        EpochSampler(RandomSampler(range(10))).set_epoch(0, -1)


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cfg = TrainConfig(stage="iscn", out=str(tmp_path), synth="scene", steps=1, resume=True, size=96)
    from training.train_loop import train

    with pytest.raises(FileNotFoundError, match="no checkpoint to resume"):
        train(cfg, samples=[object()])


def test_config_yaml_then_flags(tmp_path: Path) -> None:
    y = tmp_path / "c.yaml"
    y.write_text("batch_size: 3\nlr: 0.001\ninputs: [box, text]\nsteps: 7\n")
    cfg = config_from_args(["iscn", "--config", str(y), "--synth", "random", "--out", "R", "--lr", "0.002"])
    assert (cfg.batch_size, cfg.lr, cfg.inputs, cfg.steps, cfg.synth) == (3, 0.002, ["box", "text"], 7, "random")
    assert cfg.uses_text and cfg.crm and not cfg.coupled
    cfg = config_from_args(["iscn", "--synth", "scene", "--out", "R", "--steps", "1", "--no-crm", "--coupled"])
    assert not cfg.crm and cfg.coupled
    bad = tmp_path / "bad.yaml"
    bad.write_text("batchsize: 3\n")
    with pytest.raises(ValueError, match="unknown settings.*batchsize"):
        config_from_args(["iscn", "--config", str(bad), "--synth", "scene", "--out", "R", "--steps", "1"])
    with pytest.raises(ValueError, match="needs iscn"):
        config_from_args(["mrn", "--synth", "scene", "--out", "R", "--steps", "1"])
    with pytest.raises(ValueError, match="exactly one training data source"):
        config_from_args(["iscn", "--out", "R", "--steps", "1"])
    assert main(["iscn", "--out", "R", "--steps", "1"]) == 2


def test_round1_prob_weights_the_trained_round() -> None:
    """Default: uniform in 1..max_rounds (the same draws as before the option existed);
    round1_prob: round 1 that often, 2..max_rounds uniformly otherwise; bad values name the field."""
    from training.train_steps import draw_round

    def counts(prob: float | None, max_rounds: int = 3, n: int = 3000) -> np.ndarray:
        rng = np.random.default_rng(5)
        return np.bincount([draw_round(rng, max_rounds, prob) for _ in range(n)], minlength=max_rounds + 1)[1:]

    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    assert [draw_round(rng, 3) for _ in range(50)] == [int(ref.integers(1, 4)) for _ in range(50)]
    uniform = counts(None) / 3000
    assert np.all(np.abs(uniform - 1 / 3) < 0.04)
    weighted = counts(0.6) / 3000
    assert abs(weighted[0] - 0.6) < 0.04 and abs(weighted[1] - weighted[2]) < 0.05
    assert counts(1.0).tolist() == [3000, 0, 0] and counts(0.0)[0] == 0
    assert counts(0.3, max_rounds=1).tolist() == [3000]
    cfg = config_from_args(["iscn", "--synth", "scene", "--out", "R", "--steps", "1", "--round1-prob", "0.6"])
    assert cfg.round1_prob == 0.6
    with pytest.raises(ValueError, match="round1_prob must be in"):
        config_from_args(["iscn", "--synth", "scene", "--out", "R", "--steps", "1", "--round1-prob", "1.5"])
    with pytest.raises(ValueError, match="round1_prob below 1 needs max_rounds"):
        config_from_args(["iscn", "--synth", "scene", "--out", "R", "--steps", "1", "--round1-prob", "0.5",
                          "--max-rounds", "1"])


def test_perturbed_gt_is_a_plausible_coarse_mask() -> None:
    gt = np.zeros((96, 96), np.float32)
    gt[20:80, 30:60] = 1.0
    rng = np.random.default_rng(0)
    for _ in range(10):
        m = perturb_mask(gt, rng)
        assert m.shape == gt.shape and m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0
        inter = ((m > 0.5) & (gt > 0.5)).sum() / max(1, ((m > 0.5) | (gt > 0.5)).sum())
        assert 0.3 < inter < 1.0 or not np.array_equal(m, gt), "changed, but still about the target"


def test_coupled_trains_both_networks_in_one_stage(tmp_path: Path) -> None:
    from model import build_dfimat

    assert main(["iscn", *TINY, "--out", str(tmp_path), "--steps", "1", "--max-rounds", "1", "--coupled"]) == 0
    (row,) = log(tmp_path, "iscn")
    assert row["total"] == pytest.approx(row["iscn"] + row["mrn"], rel=1e-5)
    trained, extra = load_checkpoint(tmp_path / "iscn_last.pt", text_encoder=False)
    assert extra["coupled"] is True
    torch.manual_seed(0)  # the run builds its model right after seeding with --seed 0
    init = build_dfimat("small", text_encoder=False)
    for part in ("iscn", "mrn"):
        a, b = getattr(init, part).state_dict(), getattr(trained, part).state_dict()
        assert any(not torch.equal(a[k], b[k]) for k in a), f"{part} did not move in coupled training"


def test_a_coupled_continuation_re_fits_the_mrn_batchnorms_it_trains(run: Path, tmp_path: Path, capsys) -> None:
    """Coupled ISCN training trains MRN too, so a coupled --init re-fits MRN's BatchNorms on the
    coarse masks ISCN gives (as the MRN stage does); decoupled ISCN training leaves MRN alone."""
    from model import build_dfimat
    from training.train_steps import ISCNStep

    start, _ = load_checkpoint(run / "mrn_last.pt", text_encoder=False)
    common = [*TINY, "--steps", "1", "--max-rounds", "1", "--lr", "1e-9", "--init", str(run / "mrn_last.pt")]
    assert main(["iscn", *common, "--out", str(tmp_path / "coupled"), "--coupled"]) == 0
    assert "MRN BatchNorm statistics re-fitted" in capsys.readouterr().out
    after, _ = load_checkpoint(tmp_path / "coupled" / "iscn_last.pt", text_encoder=False)
    norms = {n for n, m in after.mrn.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    theirs = dict(start.mrn.named_parameters())
    for name, b in after.mrn.named_parameters():
        if name.rsplit(".", 1)[0] not in norms:
            assert torch.allclose(theirs[name], b, atol=1e-5), f"coupled training starts from --init's MRN: {name}"
    assert main(["iscn", *common, "--out", str(tmp_path / "decoupled")]) == 0
    assert "re-fitted" not in capsys.readouterr().out
    decoupled = ISCNStep(build_dfimat("small", text_encoder=False), TrainConfig(out="x", synth="scene", steps=1))
    with pytest.raises(ValueError, match="only coupled"):
        decoupled.calibrate_batchnorm([], 0)


@pytest.mark.parametrize("crm", [True, False])
def test_no_crm_never_passes_the_previous_mask(crm: bool) -> None:
    from model import build_dfimat
    from training.train_data import InstanceDataset, collate
    from training.train_steps import RoundPlan, simulate_rounds

    gt = np.zeros((96, 96), np.float32)
    gt[20:80, 30:60] = 1.0

    class S:
        name, image, alphas, texts = "s", np.full((96, 96, 3), 90, np.uint8), gt[None], [None]

    batch = collate([InstanceDataset([S()], 96, inputs=["click"])[0]])
    net = build_dfimat("small", text_encoder=False).eval()
    seen: list[object] = []
    decode = net.iscn.decode

    def spy(feats, prompts, prev_mask=None):
        seen.append(prev_mask)
        return decode(feats, prompts, prev_mask)

    net.iscn.decode = spy  # type: ignore[method-assign]
    plan = RoundPlan(batch)
    with torch.no_grad():
        prompts, prev = simulate_rounds(net, net.iscn.encode_image(batch.images), plan, 3, crm)
    assert len(seen) == 2 and len(prompts[0].clicks) > 3, "rounds 1 and 2 ran and round 3 added inputs"
    if crm:
        assert seen[0] is None and seen[1] is not None and prev is not None
    else:
        assert seen == [None, None] and prev is None


def test_single_round_users_are_corrected_with_clicks_in_later_rounds() -> None:
    """Box and text users have one round of their own; training still reaches rounds 2+ (where the
    CRM learns) by letting a click user correct them."""
    from training.simulate import UserSimulator
    from training.train_data import Batch, TrainItem
    from training.train_steps import RoundPlan
    from training.train_users import draw_user

    target = np.zeros((64, 64), np.float32)
    target[10:50, 20:40] = 1.0
    others = np.zeros((0, 64, 64), np.float32)
    user = draw_user(target, others, "the person", ["box"], 0.0, np.random.default_rng(0))
    item = TrainItem(np.zeros((64, 64, 3), np.uint8), target, others, "the person", "a", user)
    batch = Batch(torch.zeros(2, 3, 64, 64), torch.zeros(2, 1, 64, 64), [item, item])
    plan = RoundPlan(batch)
    assert plan.corrector(0, 1) is plan.sims[0] and plan.sims[0].mode == "box"
    later = plan.corrector(0, 2)
    assert isinstance(later, UserSimulator) and later.mode == "click"
    pred = np.zeros((64, 64), np.float32)
    assert later.next_round(item.target, pred, 2).clicks  # a miss gets a foreground click


def test_time_box_stops_with_a_checkpoint_and_anneals_by_the_clock(tmp_path: Path) -> None:
    """--max-minutes ends a run early, with a resumable checkpoint, and the learning rate has
    followed the clock rather than the (far longer) step schedule."""
    from training.train_loop import run_progress

    assert run_progress(10, 100, 0.0, None) == pytest.approx(0.1)
    assert run_progress(10, 100, 30.0, 1.0) == pytest.approx(0.5)  # time ahead of steps
    assert run_progress(90, 100, 30.0, 1.0) == pytest.approx(0.9)  # steps ahead of time
    out = tmp_path / "boxed"
    assert main(["iscn", *TINY, "--out", str(out), "--steps", "1000", "--max-rounds", "1",
                 "--max-minutes", "0.0001"]) == 0
    rows = log(out, "iscn")
    assert [r["step"] for r in rows] == [1], "a spent time box stops after the step in flight"
    assert rows[-1]["lr"] == pytest.approx(0.0, abs=1e-9), "the clock says the run is over, so lr is at its floor"
    _, extra = load_checkpoint(out / "iscn_last.pt", text_encoder=False)
    assert extra["step"] == 1 and extra["config"]["max_minutes"] == pytest.approx(0.0001)
    with pytest.raises(ValueError, match="max_minutes"):
        TrainConfig(out="x", synth="scene", steps=1, max_minutes=0).validate()


def test_init_starts_from_a_checkpoints_weights_and_records_its_lineage(run: Path, tmp_path: Path) -> None:
    """--init continues training elsewhere (a fresh optimizer): the first step starts from the
    given weights, and the checkpoint says where they came from."""
    out = tmp_path / "more"
    assert main(["iscn", *TINY, "--out", str(out), "--steps", "2", "--max-rounds", "1", "--lr", "1e-9",
                 "--init", str(run / "mrn_last.pt")]) == 0
    start, _ = load_checkpoint(run / "mrn_last.pt", text_encoder=False)
    after, extra = load_checkpoint(out / "iscn_last.pt", text_encoder=False)
    for (name, a), b in zip(start.iscn.state_dict().items(), after.iscn.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), f"{name} did not start from --init"
    assert extra["init_from"]["step"] == 6 and extra["init_from"]["stage"] == "mrn"
    assert extra["init_from"]["iscn_training"]["step"] == 8, "the whole lineage is kept"

    assert main(["mrn", *TINY, "--out", str(out), "--steps", "1", "--lr", "1e-9", "--iscn", str(out / "iscn_last.pt"),
                 "--init", str(run / "mrn_last.pt")]) == 0
    mrn, mrn_extra = load_checkpoint(out / "mrn_last.pt", text_encoder=False)
    norms = {n for n, m in mrn.mrn.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    theirs = dict(start.mrn.named_parameters())
    for name, b in mrn.mrn.named_parameters():  # BatchNorms are re-fitted (tests/test_bn_calibration.py)
        if name.rsplit(".", 1)[0] not in norms:
            assert torch.allclose(theirs[name], b, atol=1e-5), f"the MRN stage starts from --init's MRN: {name}"
    assert norms, "the MRN has BatchNorms, so the line above left something out"
    assert mrn_extra["iscn_training"]["init_from"]["iscn_training"]["step"] == 8, "the ancestry is kept once"
    assert mrn_extra["init_from"] == {"path": str(run / "mrn_last.pt"), "same_as": "iscn_training.init_from"}, \
        "the MRN's start, the same checkpoint as its ISCN's, is a reference, not a second copy"
    with pytest.raises(ValueError, match="not both"):
        TrainConfig(out="x", synth="scene", steps=1, init="a.pt", resume=True).validate()


def test_focus_crops_frame_the_target_as_the_engine_zooms_in() -> None:
    """--focus-prob: a crop around one person (whole, larger than in a scene crop), that person
    the target; the other crops still show the scene."""
    from training.train_data import InstanceDataset, focus_crop, random_crop

    h, w = 400, 600
    alphas = np.zeros((3, h, w), np.float32)
    alphas[0, 150:350, 60:120] = 1.0   # 200 px tall
    alphas[1, 100:380, 300:380] = 1.0  # 280 px tall
    alphas[2, 240:300, 500:520] = 1.0  # 60 px tall

    class S:
        name, image, alphas, texts = "s", np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8), None, [
            "left", "middle", "right"]

    S.alphas = alphas
    for seed in range(20):
        rng = np.random.default_rng(seed)
        img, crop = focus_crop(S(), 0, 96, rng)
        assert img.shape == (96, 96, 3) and crop.shape == (3, 96, 96)
        # the frame (1.15 to 1.6 x 200 = 230 to 320 px of the image) shows the whole person
        area = alphas[0].sum()
        assert 0.95 * area * (96 / 320) ** 2 <= crop[0].sum() <= 1.05 * area * (96 / 230) ** 2
        rows = np.nonzero(crop[0].max(axis=1) > 0.5)[0]
        assert rows.min() > 0 and rows.max() < 95 and rows.max() - rows.min() + 1 >= 96 / 1.6 - 2
        _, scene = random_crop(S(), 96, np.random.default_rng(seed))
        assert (scene[0] > 0.5).sum() < (crop[0] > 0.5).sum()
    # a small person is magnified as the engine's Frame.view does, down to a frame of 96 / MAX_ZOOM:
    # the 60 x 20 person's frame is 69 to 96 px, so it grows 1 to 1.39x on each side
    areas = [(focus_crop(S(), 2, 96, np.random.default_rng(seed))[1][2] > 0.5).sum() for seed in range(12)]
    assert all(0.9 * 1200 <= a <= 1.1 * 1200 * (96 / 69) ** 2 for a in areas) and np.mean(areas) > 1.2 * 1200
    alphas[2] = 0.0
    alphas[2, 250:270, 505:512] = 1.0  # 20 px tall: the frame stops at 48 px (2x), not 23
    assert (focus_crop(S(), 2, 96, np.random.default_rng(3))[1][2] > 0.5).sum() == pytest.approx(20 * 7 * 4, rel=0.3)
    alphas[2] = 0.0
    alphas[2, 240:300, 500:520] = 1.0

    focused = InstanceDataset([S()], 96, seed=1, focus_prob=1.0)
    scene = InstanceDataset([S()], 96, seed=1, focus_prob=0.0)
    for i in range(6):
        item = focused[(i, 0)]
        assert item.text in ("left", "middle", "right") and (item.target > 0.5).sum() > 300
        assert item.others.shape == (2, 96, 96)
        assert not np.array_equal(item.image, scene[(i, 0)].image)
    # a description alone is read on the whole scene, as the engine does: never a focus crop
    texts = InstanceDataset([S()], 96, seed=1, inputs=("text",), focus_prob=1.0)
    boxes = InstanceDataset([S()], 96, seed=1, inputs=("box",), focus_prob=1.0)
    for i in range(6):
        assert np.array_equal(texts[(i, 0)].image, scene[(i, 0)].image)
        assert texts[(i, 0)].user.sim.mode == "text" and boxes[(i, 0)].user.sim.mode == "box"
        assert not np.array_equal(boxes[(i, 0)].image, scene[(i, 0)].image)
    with pytest.raises(ValueError, match="focus_prob"):
        TrainConfig(stage="iscn", out="x", synth="scene", steps=1, focus_prob=1.5).validate()
    assert config_from_args(["iscn", "--out", "x", "--synth", "scene", "--steps", "1", "--focus-prob", "0.5"]).focus_prob == 0.5
