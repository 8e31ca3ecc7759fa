"""Dense prompt embedding: where the clicks, scribbles and boxes are, painted on the stride-4 grid.

The sparse prompt tokens (visual sampler) tell the decoder *what* the user pointed at; this map
tells every pixel *where* the inputs are (SAM's dense prompt embedding, and the click maps of
classical interactive segmentation), so a box excludes what lies outside it from the first
training steps and a click marks its neighbourhood without the decoder having to learn it
through attention. Channels: foreground strokes, background strokes (and outside every box),
inside a box. Two convolutions, the second dilated, spread the marks a little; the last is
zero-initialised so a fresh model starts from the sparse path alone.
"""

from __future__ import annotations

import torch
from torch import nn

from .common import zero_init


class DensePromptEmbedding(nn.Module):
    def __init__(self, dim: int, hidden: int = 32):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, hidden, 3, padding=1),
            nn.GELU(),
            zero_init(nn.Conv2d(hidden, dim, 3, padding=2, dilation=2)),
        )

    def forward(self, fg: torch.Tensor, bg: torch.Tensor, inside_box: torch.Tensor) -> torch.Tensor:
        """Three (B, h, w) maps in {0, 1} -> (B, D, h, w)."""
        return self.body(torch.stack([fg, bg, inside_box], dim=1))
