"""ISCN image encoder: a ConvNeXt-style backbone and an FPN pixel decoder.

The backbone is trained from scratch (no hub weights may be fetched here); ConvNeXt blocks are
used because they train stably from scratch at small sizes and export to plain ONNX ops.
The pixel decoder gives the multi-scale features F_v the decoder's queries attend to (strides 32,
16 and 8) and the per-pixel embedding at stride 4 the mask predictor multiplies with.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .common import LayerNorm2d


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dw = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim)
        self.pw1 = nn.Conv2d(dim, 4 * dim, 1)
        self.pw2 = nn.Conv2d(4 * dim, dim, 1)
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gamma * self.pw2(F.gelu(self.pw1(self.norm(self.dw(x)))))


class Backbone(nn.Module):
    """Four stages at strides 4, 8, 16, 32."""

    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...]):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(LayerNorm2d(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
            for i in range(len(dims) - 1)
        )
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(d) for _ in range(n)]) for d, n in zip(dims, depths, strict=True)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        x = self.stem(x)
        for i, stage in enumerate(self.stages):
            if i > 0:
                x = self.downs[i - 1](x)
            x = stage(x)
            feats.append(x)
        return feats


class PixelDecoder(nn.Module):
    """Top-down FPN: every level projected to the decoder width ``dim``."""

    def __init__(self, in_dims: tuple[int, ...], dim: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, dim, 1) for c in in_dims)
        # Depthwise 3x3 then pointwise: a full 3x3 at stride 4 would cost more than the backbone.
        self.smooth = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(dim, dim, 3, padding=1, groups=dim), nn.Conv2d(dim, dim, 1), nn.GroupNorm(8, dim), nn.GELU()
            )
            for _ in in_dims
        )
        self.mask_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, feats: list[torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        outs = [x]
        for i in range(len(feats) - 2, -1, -1):
            lat = self.lateral[i](feats[i])
            x = self.smooth[i](lat + F.interpolate(x, size=lat.shape[-2:], mode="bilinear", align_corners=False))
            outs.append(x)
        # outs: strides 32, 16, 8, 4. The last one becomes the per-pixel mask embedding.
        return outs[:-1], self.mask_proj(outs[-1])


@dataclass
class ImageFeatures:
    """What ``ISCN.encode_image`` computes once per image and every round reuses.

    levels: F_v at strides 32, 16, 8 of the model's input, each (B, D, h, w);
    mask_features: per-pixel embedding at stride 4, (B, D, S/4, S/4);
    image_size: (height, width) of the caller's image, where outputs are returned.
    """

    levels: list[torch.Tensor]
    mask_features: torch.Tensor
    image_size: tuple[int, int]


class ImageEncoder(nn.Module):
    def __init__(self, dims: tuple[int, ...], depths: tuple[int, ...], out_dim: int):
        super().__init__()
        self.backbone = Backbone(dims, depths)
        self.pixel_decoder = PixelDecoder(dims, out_dim)

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x: normalised (B, 3, S, S) -> ([F_32, F_16, F_8], mask_features)."""
        return self.pixel_decoder(self.backbone(x))
