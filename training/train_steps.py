"""One training step's forward pass and losses, per stage (a module each, so DDP can wrap it).

ISCN (paper 3.2, 5.1-5.2): per batch a round r is drawn in 1..max_rounds (``draw_round``); rounds 1..r-1 run
without gradient (single-round modes, box and text, are corrected with clicks after round 1) to build what round r sees (every earlier input, and the CRM state: the
previous round's low-resolution mask), then round r is trained. Loss: ``model.iscn_loss``
(0.1 class + BCE + Dice) on the binarised target at the training image size, plus the same
mask loss on every earlier decoder stage's low-resolution output against the target resized to
that grid (deep supervision, weight ``aux_weight``, averaged over stages). Negative items (no
person left in the crop, or drawn with ``negative_prob``) get prompts on a background region
away from every person and a non-person description: target empty, class 0. Round 1 is drawn
with the item (``training.train_users``); later rounds' corrections run in ``training.sim_pool``.

MRN (paper 3.3): ISCN frozen in eval mode; the coarse mask is ISCN's prediction after r
simulated rounds or, with ``perturb_prob``, the ground truth perturbed (erode/dilate, holes,
blur) so MRN learns to fix the mistakes it will meet. Loss: ``model.mrn_loss`` on the final
alpha plus ``aux_weight`` x the mean of the same loss on the 1/8, 1/4 and full-resolution PRM
outputs. Coupled (Table 4 ablation): the ISCN loss plus the MRN loss on ISCN's own mask, with
the gradient flowing through both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model import DFIMat, iscn_loss, mrn_loss
from plugin.prompts import Prompts

from .bn_calibration import recalibrate_batchnorm
from .sim_pool import CorrectionPool
from .simulate import UserSimulator
from .train_config import TrainConfig
from .train_data import Batch
from .train_users import ItemUser


def autocast_context(device: torch.device, amp: str) -> contextlib.AbstractContextManager:
    """bf16 (or fp16) autocast on CUDA; nothing on CPU, where mixed precision does not pay."""
    if device.type != "cuda" or amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.autocast("cuda", dtype=torch.float16)
    return torch.autocast("cuda", dtype=torch.bfloat16)


class RoundPlan:
    """The batch's simulated users, targets and round-1 inputs (drawn with the items, see
    ``training.train_users``): what the rounds are built from."""

    def __init__(self, batch: Batch):
        missing = [it.name for it in batch.items if it.user is None]
        if missing:
            raise ValueError(f"items without a simulated user ({missing[:3]}): build the dataset with inputs=...")
        self.users: list[ItemUser] = [it.user for it in batch.items]  # type: ignore[misc]

    @property
    def sims(self) -> list[UserSimulator]:
        return [u.sim for u in self.users]

    @property
    def gts(self) -> list[np.ndarray]:
        return [u.gt for u in self.users]

    @property
    def first(self) -> list[Prompts]:
        return [u.first for u in self.users]

    @property
    def is_person(self) -> list[float]:
        return [u.is_person for u in self.users]

    def corrector(self, i: int, round_index: int) -> UserSimulator:
        """Who gives round ``round_index``'s inputs for item i (``ItemUser.corrector``)."""
        return self.users[i].corrector(round_index)


def draw_round(rng: np.random.Generator, max_rounds: int, round1_prob: float | None = None) -> int:
    """The round a batch trains on. Box and text users give one input and are scored on it, but
    they are trained on it alone only in batches on round 1 (later rounds add clicks), so
    ``round1_prob`` can give round 1 more weight than the uniform draw in 1..max_rounds (None)."""
    if round1_prob is None or max_rounds == 1:
        return int(rng.integers(1, max_rounds + 1))
    if rng.random() < round1_prob:
        return 1
    return int(rng.integers(2, max_rounds + 1))


def simulate_rounds(
    net: DFIMat, feats, plan: RoundPlan, rounds: int, crm: bool, pool: CorrectionPool | None = None
) -> tuple[list[Prompts], torch.Tensor | None]:
    """Run rounds 1..rounds-1 without gradient; return round ``rounds``' prompts and prev mask.
    Each round's corrections are made by ``pool`` (in this process when None)."""
    pool = pool or CorrectionPool(0)
    prompts = list(plan.first)
    prev = None
    for k in range(2, rounds + 1):
        with torch.no_grad():
            out = net.iscn.decode(feats, prompts, prev if crm else None)
            probs = out.mask_logits.float().sigmoid()[:, 0].cpu().numpy()
            prev = out.low_res_logits.float().sigmoid()
        jobs = [(plan.corrector(i, k), gt, probs[i], k) for i, gt in enumerate(plan.gts)]
        prompts = [p.merged(new) for p, new in zip(prompts, pool.correct(jobs), strict=True)]
    return prompts, (prev if crm else None)


def _mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + Dice of one mask output against a binary target resized to its grid."""
    if target.shape[-2:] != logits.shape[-2:]:
        target = F.interpolate(target, size=logits.shape[-2:], mode="area")
    target = (target > 0.5).float()
    dummy = logits.new_zeros(logits.shape[0])
    return iscn_loss(logits.float(), dummy, target, dummy, class_weight=0.0)["total"]


def iscn_losses(out, targets: torch.Tensor, is_person: torch.Tensor, aux_weight: float) -> dict[str, torch.Tensor]:
    parts = iscn_loss(out.mask_logits.float(), out.class_logits.float(), (targets > 0.5).float(), is_person)
    aux = [_mask_loss(a, targets) for a in out.aux_low_res_logits]
    aux_loss = torch.stack(aux).mean() if aux else targets.new_zeros(())
    parts = dict(parts)
    parts["aux"] = aux_loss
    parts["iscn"] = parts["total"] + aux_weight * aux_loss
    parts["total"] = parts["iscn"]
    return parts


def mrn_losses(net: DFIMat, images: torch.Tensor, coarse: torch.Tensor, targets: torch.Tensor, aux_weight: float) -> dict[str, torch.Tensor]:
    o = net.mrn.forward_all(images, coarse)
    main = mrn_loss(o.alpha.float(), targets)
    aux = torch.stack([mrn_loss(a.float(), targets) for a in (o.alpha_os8, o.alpha_os4, o.alpha_os1)]).mean()
    return {"alpha": main, "prm": aux, "mrn": main + aux_weight * aux, "total": main + aux_weight * aux}


def perturb_mask(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A plausible coarse mask from a ground-truth alpha: binarised, eroded or dilated, with a few
    holes and blobs, then blurred; float32 (H, W) in [0, 1]."""
    h, w = alpha.shape
    m = (alpha > 0.5).astype(np.uint8)
    side = min(h, w)
    r = int(rng.integers(1, max(2, int(0.04 * side)) + 1))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m = cv2.erode(m, k) if rng.random() < 0.5 else cv2.dilate(m, k)
    for _ in range(int(rng.integers(0, 4))):
        ys, xs = np.nonzero(alpha > 0.5) if rng.random() < 0.7 and (alpha > 0.5).any() else (np.array([rng.integers(h)]), np.array([rng.integers(w)]))
        i = int(rng.integers(len(xs)))
        axes = (int(rng.integers(1, max(2, side // 10))), int(rng.integers(1, max(2, side // 10))))
        cv2.ellipse(m, (int(xs[i]), int(ys[i])), axes, float(rng.uniform(0, 180)), 0, 360, int(rng.random() < 0.5), -1)
    out = m.astype(np.float32)
    sigma = float(rng.uniform(0.0, 0.02 * side))
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return np.clip(out, 0.0, 1.0)


class ISCNStep(nn.Module):
    """Forward = one ISCN training step's losses (``coupled``: plus MRN trained on ISCN's mask)."""

    def __init__(self, net: DFIMat, cfg: TrainConfig, pool: CorrectionPool | None = None):
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.pool = pool

    def forward(self, batch: Batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        plan = RoundPlan(batch)
        rounds = draw_round(rng, cfg.max_rounds, cfg.round1_prob)
        feats = self.net.iscn.encode_image(batch.images)
        prompts, prev = simulate_rounds(self.net, feats, plan, rounds, cfg.crm, self.pool)
        out = self.net.iscn.decode(feats, prompts, prev)
        targets = torch.from_numpy(np.stack(plan.gts))[:, None].to(batch.images.device)
        is_person = torch.tensor(plan.is_person, device=batch.images.device)
        parts = iscn_losses(out, targets, is_person, cfg.aux_weight)
        parts["rounds"] = torch.tensor(float(rounds))
        if cfg.coupled:
            coarse = out.mask_logits.float().sigmoid()
            m = mrn_losses(self.net, batch.images, coarse.to(batch.images.dtype), targets, cfg.aux_weight)
            parts.update({k: v for k, v in m.items() if k != "total"})
            parts["total"] = parts["iscn"] + m["total"]
        return parts

    def calibrate_batchnorm(self, batches: Sequence[Batch], seed: int) -> int:
        """Coupled training only: re-fit MRN's BatchNorm statistics on the coarse masks ISCN
        gives round 1 of ``batches`` (what coupled MRN is trained on), as ``MRNStep`` does for
        its own inputs, so a coupled continuation from a checkpoint (one read back from graphs
        above all) starts from the function it was given. How many BatchNorms moved."""
        if not self.cfg.coupled:
            raise ValueError("only coupled ISCN training trains the MRN: nothing to re-fit")
        del seed  # round 1 comes from the items' own users: nothing to draw

        def run() -> None:
            was_training = self.net.iscn.training
            self.net.iscn.eval()
            try:
                for batch in batches:  # round 1: the items' own first inputs, no previous mask
                    feats = self.net.iscn.encode_image(batch.images)
                    coarse = self.net.iscn.decode(feats, RoundPlan(batch).first, None).mask_logits.float().sigmoid()
                    self.net.mrn.forward_all(batch.images, coarse.to(batch.images.dtype))
            finally:
                self.net.iscn.train(was_training)

        return recalibrate_batchnorm(self.net.mrn, run)


class MRNStep(nn.Module):
    """Forward = one MRN training step's losses, with ISCN frozen (eval mode, no gradient)."""

    def __init__(self, net: DFIMat, cfg: TrainConfig, pool: CorrectionPool | None = None):
        super().__init__()
        self.net = net
        self.cfg = cfg
        self.pool = pool
        net.iscn.requires_grad_(False)

    def train(self, mode: bool = True) -> MRNStep:
        super().train(mode)
        self.net.iscn.eval()  # frozen means frozen: no dropout, no BatchNorm statistics updates
        return self

    def coarse_masks(self, batch: Batch, rng: np.random.Generator) -> torch.Tensor:
        """MRN's input mask for each item: the frozen ISCN's after simulated rounds, or (with
        ``perturb_prob``) a perturbed ground truth."""
        cfg = self.cfg
        plan = RoundPlan(batch)
        rounds = draw_round(rng, cfg.max_rounds, cfg.round1_prob)
        with torch.no_grad():
            feats = self.net.iscn.encode_image(batch.images)
            prompts, prev = simulate_rounds(self.net, feats, plan, rounds, cfg.crm, self.pool)
            coarse = self.net.iscn.decode(feats, prompts, prev).mask_logits.float().sigmoid()
        for i, it in enumerate(batch.items):
            if rng.random() < cfg.perturb_prob:
                coarse[i, 0] = torch.from_numpy(perturb_mask(it.target, rng)).to(coarse.device)
        return coarse.to(batch.images.dtype)

    def forward(self, batch: Batch, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        coarse = self.coarse_masks(batch, rng)
        return mrn_losses(self.net, batch.images, coarse, batch.targets, self.cfg.aux_weight)

    def calibrate_batchnorm(self, batches: Sequence[Batch], seed: int) -> int:
        """Re-fit MRN's BatchNorm statistics on ``batches`` as this stage feeds them to MRN,
        keeping its eval-mode output (``training.bn_calibration``): a continuation from a
        checkpoint starts training from the function it was given. How many BatchNorms moved."""
        rng = np.random.default_rng([seed, 0x6263])

        def run() -> None:
            for batch in batches:
                self.net.mrn.forward_all(batch.images, self.coarse_masks(batch, rng))

        return recalibrate_batchnorm(self.net.mrn, run)


def trainable_parameters(step: nn.Module, stage: str, coupled: bool) -> Sequence[nn.Parameter]:
    """What the optimizer updates: ISCN (and MRN when coupled) or MRN alone; never MiniLM."""
    net: DFIMat = step.net  # type: ignore[assignment]
    mods = [net.iscn] if stage == "iscn" else [net.mrn]
    if stage == "iscn" and coupled:
        mods.append(net.mrn)
    return [p for m in mods for n, p in m.named_parameters() if p.requires_grad and "text_encoder" not in n]
