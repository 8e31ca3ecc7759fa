"""Contrastive reasoning module (CRM): where do the new inputs contradict the last prediction?

M_ref holds, per cell of the stride-4 grid: 0 no conflict; 1 the previous prediction said
background but an input says foreground; 2 the previous prediction said foreground but an input
says background. Inputs cover: a disk of radius ``radius`` (normalised units) around a click or
along a scribble's stroke, with the prompt's polarity; and everything outside all boxes as
background (a box says the person is inside it). Text says nothing about places. A cell cannot be
both 1 and 2 (one needs a background prediction, the other a foreground one). Without a previous
prediction M_ref is all 0.

Each value has a learned embedding; the embedding map is pooled to every feature level and added
to F_v, so each round's decoder sees where it was wrong.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from plugin.prompts import KIND_BOX

from .common import zero_init

#: Reach of a click or scribble in M_ref, as a fraction of the image side.
INPUT_RADIUS = 0.02


def prompt_maps(
    points: torch.Tensor,
    kinds: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    size: tuple[int, int],
    radius: float = INPUT_RADIUS,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(foreground, background, inside a box) input masks (B, h, w) in {0, 1} on an (h, w) grid
    of cell centres; background includes everything outside the boxes when there is a box."""
    h, w = size
    b = points.shape[0]
    ys = (torch.arange(h, device=points.device, dtype=points.dtype) + 0.5) / h
    xs = (torch.arange(w, device=points.device, dtype=points.dtype) + 0.5) / w
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    gx, gy = gx.reshape(1, 1, 1, h * w), gy.reshape(1, 1, 1, h * w)  # (1,1,1,N) cell centres

    # x and y kept apart: (B,P,K-1,N) tensors, no trailing axis of 2 to reduce (about twice as
    # fast on CPU as stacked coordinates; this is most of a decoder call's non-network time).
    ax, ay = points[:, :, :-1, 0:1], points[:, :, :-1, 1:2]  # (B,P,K-1,1) segment starts
    abx, aby = points[:, :, 1:, 0:1] - ax, points[:, :, 1:, 1:2] - ay  # segment vectors
    dx, dy = gx - ax, gy - ay
    t = ((dx * abx + dy * aby) / (abx * abx + aby * aby).clamp_min(1e-12)).clamp(0.0, 1.0)
    ex, ey = dx - t * abx, dy - t * aby  # cell minus its closest point on the segment
    dist = (ex * ex + ey * ey).amin(dim=2)  # (B,P,N) squared distance to the stroke
    near = (dist <= radius * radius).to(points.dtype)

    box = (kinds == KIND_BOX).to(points.dtype)
    is_box = box * valid  # (B,P)
    stroke = (1.0 - box) * valid
    fg_w = stroke * (labels == 1).to(points.dtype)
    bg_w = stroke * (labels == 0).to(points.dtype)
    fg = (near * fg_w.unsqueeze(-1)).amax(dim=1)
    bg = (near * bg_w.unsqueeze(-1)).amax(dim=1)

    # Outside every box: corners 0 (top-left) and 2 (bottom-right) bound the box.
    cx, cy = gx.reshape(1, 1, h * w), gy.reshape(1, 1, h * w)
    inside = ((cx >= points[:, :, 0, 0:1]) & (cx <= points[:, :, 2, 0:1])
              & (cy >= points[:, :, 0, 1:2]) & (cy <= points[:, :, 2, 1:2])).to(points.dtype)  # (B,P,N)
    inside_any = (inside * is_box.unsqueeze(-1)).amax(dim=1)
    has_box = is_box.amax(dim=1, keepdim=True)
    bg = torch.maximum(bg, has_box * (1.0 - inside_any))
    return fg.reshape(b, h, w), bg.reshape(b, h, w), inside_any.reshape(b, h, w)


def conflict_map(
    points: torch.Tensor,
    kinds: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    prev_prob: torch.Tensor,
    prev_valid: torch.Tensor,
) -> torch.Tensor:
    """M_ref (B, h, w) int64 on the grid of ``prev_prob`` (B, 1, h, w); prev_valid (B,) in {0, 1}."""
    h, w = prev_prob.shape[-2:]
    fg_in, bg_in, _ = prompt_maps(points, kinds, labels, valid, (h, w))
    return conflict_from_maps(fg_in, bg_in, prev_prob, prev_valid)


def conflict_from_maps(
    fg_in: torch.Tensor, bg_in: torch.Tensor, prev_prob: torch.Tensor, prev_valid: torch.Tensor
) -> torch.Tensor:
    """M_ref from input masks already on the grid of ``prev_prob`` (see ``prompt_maps``)."""
    prev_fg = (prev_prob[:, 0] > 0.5).to(fg_in.dtype)
    on = prev_valid.to(fg_in.dtype).view(-1, 1, 1)
    missed = fg_in * (1.0 - prev_fg) * on  # said foreground, predicted background -> 1
    wrong = bg_in * prev_fg * on  # said background, predicted foreground -> 2
    return (missed + 2.0 * wrong).long()


class ContrastiveReasoning(nn.Module):
    """E_c: one learned vector per M_ref value on the stride-4 grid (added to F_v by the ISCN)."""

    def __init__(self, dim: int):
        super().__init__()
        # a 1x1 conv over one-hot M_ref == a lookup; zero: a no-op at first, so round-1 training is undisturbed
        self.embed = zero_init(nn.Conv2d(3, dim, 1, bias=False))

    def forward(self, m_ref: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """m_ref (B, h, w) int64 -> E_c (B, D, h, w) in the dtype of ``like``."""
        onehot = F.one_hot(m_ref, 3).permute(0, 3, 1, 2).to(like.dtype)
        return self.embed(onehot)


def add_to_levels(
    e: torch.Tensor, levels: list[torch.Tensor], mask_features: torch.Tensor
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Add a stride-4 embedding map to F_v and, average-pooled, to every coarser level."""
    out_levels = []
    for lvl in levels:
        factor = e.shape[-1] // lvl.shape[-1]
        out_levels.append(lvl + F.avg_pool2d(e, factor, factor))
    return out_levels, mask_features + e
