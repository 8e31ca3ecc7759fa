"""The paper's losses on tiny tensors, and that one training step reaches every trained part."""

from __future__ import annotations

import math

import pytest
import torch

from model import Prompts, build_dfimat, iscn_loss, mrn_loss
from model.losses import dice_loss


def bce(logit: float, target: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def test_iscn_loss_matches_hand_computation() -> None:
    mask_logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    gt = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    class_logits = torch.tensor([1.5])
    out = iscn_loss(mask_logits, class_logits, gt, torch.tensor([1.0]))

    expected_bce = sum(bce(v, t) for v, t in [(0.0, 0), (2.0, 1), (-1.0, 0), (3.0, 1)]) / 4
    p = [1 / (1 + math.exp(-v)) for v in (0.0, 2.0, -1.0, 3.0)]
    inter = p[1] + p[3]
    expected_dice = 1 - (2 * inter + 1) / (sum(p) + 2 + 1)
    expected_cls = bce(1.5, 1.0)
    assert out["bce"].item() == pytest.approx(expected_bce, rel=1e-5)
    assert out["dice"].item() == pytest.approx(expected_dice, rel=1e-5)
    assert out["class"].item() == pytest.approx(expected_cls, rel=1e-5)
    assert out["total"].item() == pytest.approx(0.1 * expected_cls + expected_bce + expected_dice, rel=1e-5)


def test_dice_of_a_perfect_prediction_is_near_zero() -> None:
    gt = torch.zeros(1, 1, 8, 8)
    gt[..., 2:6, 2:6] = 1
    assert dice_loss(gt * 40 - 20, gt).item() < 1e-3


def test_mrn_loss_matches_hand_computation() -> None:
    alpha = torch.tensor([[[[0.0, 0.5, 1.0, 0.2, 0.9, 0.4, 0.3, 0.8, 0.6, 0.1]]]])
    gt = torch.tensor([[[[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]]]])
    err = [0.0, 0.5, 1.0, 0.2, 0.1, 0.6, 0.3, 0.2, 0.4, 0.1]
    hard = sorted(err, reverse=True)[:3]  # 30 % of 10 pixels
    assert mrn_loss(alpha, gt).item() == pytest.approx(sum(err) / 10 + sum(hard) / 3, rel=1e-5)
    assert mrn_loss(alpha, gt, hard_weight=0.0).item() == pytest.approx(sum(err) / 10, rel=1e-5)
    assert mrn_loss(alpha, gt, hard_weight=2.5).item() == pytest.approx(sum(err) / 10 + 2.5 * sum(hard) / 3, rel=1e-5)


def test_one_training_step_moves_every_trained_parameter() -> None:
    torch.manual_seed(0)
    net = build_dfimat("small").train()
    image = torch.rand(2, 3, 96, 128)
    gt = torch.zeros(2, 1, 96, 128)
    gt[:, :, 20:80, 40:90] = 1.0
    prompts = [
        Prompts(clicks=[(60, 50, True), (5, 5, False)], scribbles=[([(50, 30), (70, 70)], True)],
                boxes=[(35, 15, 95, 85)], texts=["the person in the middle"]),
        Prompts(clicks=[(64, 48, True)], scribbles=[([(2, 90), (120, 90)], False)], texts=["a short man"]),
    ]
    prev = torch.rand(2, 1, 24, 24)
    trained = {n: p.detach().clone() for n, p in net.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in net.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith("iscn.text_encoder.") for n in frozen)

    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)

    def step() -> list[str]:
        opt.zero_grad()
        feats = net.iscn.encode_image(image)
        out = net.iscn.decode(feats, prompts, prev_mask=prev)
        loss = iscn_loss(out.mask_logits, out.class_logits, gt, torch.ones(2))["total"]
        for aux in out.aux_low_res_logits:
            small_gt = torch.nn.functional.interpolate(gt, size=aux.shape[-2:], mode="area")
            loss = loss + iscn_loss(aux, out.class_logits, small_gt, torch.ones(2))["bce"]
        mrn_out = net.mrn.forward_all(image, out.mask_logits.sigmoid().detach())
        for a in (mrn_out.alpha, mrn_out.alpha_os8, mrn_out.alpha_os4, mrn_out.alpha_os1):
            loss = loss + mrn_loss(a, gt)
        loss.backward()
        dead = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or p.grad.abs().sum() == 0)]
        opt.step()
        return dead

    # Zero-initialised output layers (dense prompts, CRM, MRN heads) pass no gradient upstream on
    # the very first step, by design; from the second step on every trained parameter gets one.
    step()
    assert step() == []
    unmoved = [n for n, p in net.named_parameters() if p.requires_grad and torch.equal(p.detach(), trained[n])]
    assert unmoved == []
    moved_frozen = [n for n, p in net.named_parameters() if not p.requires_grad and not torch.equal(p.detach(), frozen[n])]
    assert moved_frozen == []
