"""Visual sampler: clicks, scribbles and boxes become prompt tokens P_v sampled from F_v.

Each prompt holds POINTS_PER_PROMPT normalised points (see plugin/prompts.py). Its token is the
mean of the image features at those points (a scribble is sampled along its stroke, a box at its
corners and inside it), plus where it lies (the mean point and the points' bounding corners) and
learned embeddings of its type (click / scribble / box) and polarity (foreground / background).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .common import sine_embed


class VisualSampler(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.feat_proj = nn.Linear(dim, dim)
        self.geo_proj = nn.Linear(3 * dim, dim)
        self.type_embed = nn.Embedding(3, dim)
        self.polarity_embed = nn.Embedding(2, dim)
        self.dim = dim

    def forward(
        self, features: torch.Tensor, points: torch.Tensor, kinds: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """features (B, D, h, w); points (B, P, K, 2) in [0, 1]; kinds, labels (B, P) -> (B, P, D)."""
        b, p, k, _ = points.shape
        grid = points * 2.0 - 1.0  # grid_sample's [-1, 1], pixel-centre convention (align_corners=False)
        sampled = F.grid_sample(features, grid, mode="bilinear", align_corners=False)  # (B, D, P, K)
        feat = sampled.mean(dim=-1).transpose(1, 2)  # (B, P, D)
        geo = torch.cat(
            [
                sine_embed(points.mean(dim=2), self.dim),
                sine_embed(points.amin(dim=2), self.dim),
                sine_embed(points.amax(dim=2), self.dim),
            ],
            dim=-1,
        )
        return self.feat_proj(feat) + self.geo_proj(geo) + self.type_embed(kinds) + self.polarity_embed(labels)
