"""The paper's losses: ISCN (eq. 6, weights 0.1 : 1 : 1) and MRN (eq. 7, hard-pixel mining)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dice_loss(mask_logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - (2 |P n G| + eps) / (|P| + |G| + eps) per image, averaged; P = sigmoid(logits)."""
    p = torch.sigmoid(mask_logits).flatten(1)
    g = target.flatten(1)
    return (1.0 - (2.0 * (p * g).sum(1) + eps) / (p.sum(1) + g.sum(1) + eps)).mean()


def iscn_loss(
    mask_logits: torch.Tensor,
    class_logits: torch.Tensor,
    gt_mask: torch.Tensor,
    gt_is_person: torch.Tensor,
    class_weight: float = 0.1,
) -> dict[str, torch.Tensor]:
    """0.1 x CE(class) + BCE(mask) + Dice(mask). The class has two values, so its cross-entropy
    is the binary one on a single logit. Returns the parts and their weighted sum as ``total``."""
    cls = F.binary_cross_entropy_with_logits(class_logits, gt_is_person.to(class_logits.dtype))
    bce = F.binary_cross_entropy_with_logits(mask_logits, gt_mask.to(mask_logits.dtype))
    dice = dice_loss(mask_logits, gt_mask.to(mask_logits.dtype))
    return {"class": cls, "bce": bce, "dice": dice, "total": class_weight * cls + bce + dice}


def mrn_loss(
    alpha: torch.Tensor, gt_alpha: torch.Tensor, hard_weight: float = 1.0, hard_fraction: float = 0.3
) -> torch.Tensor:
    """mean |a - g| over all pixels + lambda x mean |a - g| over each image's hardest 30 % of pixels."""
    err = (alpha - gt_alpha).abs().flatten(1)
    k = max(1, int(round(hard_fraction * err.shape[1])))
    hard = err.topk(k, dim=1).values
    return err.mean() + hard_weight * hard.mean()
