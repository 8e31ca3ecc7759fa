"""Matting refinement network: image + ISCN's coarse mask -> alpha matte, at any size.

Global branch: a transformer encoder over the whole picture at a fixed low resolution (its cost
does not grow with the image), for instance-level context. Local branch: a CNN at strides 2, 4
and 8 of the full image, for detail. Progressive fusion starts from the global latent and adds
local features from low to high resolution; progressive refinement (PRM, Mask Guided Matting)
predicts alpha at 1/8, 1/4 and full resolution, each later output replacing the earlier one only
inside the uncertain band of the earlier one.

Every prediction head adds its output to the logit of the coarse mask at its resolution and
starts at zero, so an untrained MRN returns the coarse mask and training only learns the
corrections (the coarse mask is the strongest input MRN has; learning to copy it from scratch
wastes the first thousand steps). ``branches`` keeps only the global or the local branch for the
Table 6 ablation; the default, ``hybrid``, is the paper's MRN.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .modeling.common import normalize_image, zero_init

#: An alpha strictly between these is "uncertain" for PRM.
UNCERTAIN_LOW, UNCERTAIN_HIGH = 0.01, 0.99
#: MRN variants: both branches (the paper's), the global transformer alone, the local CNN alone.
BRANCHES = ("hybrid", "global", "local")
#: The coarse mask is clamped to this before its logit is taken (a logit of +-6.9: certain for PRM).
COARSE_CLAMP = 1e-3


def conv_bn_act(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def coarse_logit(coarse: torch.Tensor, factor: int) -> torch.Tensor:
    """The coarse mask's logit averaged over factor x factor cells (the input is padded to x8)."""
    c = F.avg_pool2d(coarse, factor, factor) if factor > 1 else coarse
    c = c.clamp(COARSE_CLAMP, 1.0 - COARSE_CLAMP)
    return torch.log(c) - torch.log1p(-c)


def uncertain_band(alpha: torch.Tensor, radius: int) -> torch.Tensor:
    """1 where alpha is uncertain, grown by ``radius`` cells (max-pool dilation), else 0."""
    band = ((alpha > UNCERTAIN_LOW) & (alpha < UNCERTAIN_HIGH)).to(alpha.dtype)
    return F.max_pool2d(band, 2 * radius + 1, stride=1, padding=radius)


@dataclass
class MRNOutput:
    """alpha: the final matte (B, 1, H, W); alpha_os8 / alpha_os4 / alpha_os1: each PRM stage
    upsampled to (H, W) before blending, for deep supervision."""

    alpha: torch.Tensor
    alpha_os8: torch.Tensor
    alpha_os4: torch.Tensor
    alpha_os1: torch.Tensor


class GlobalBranch(nn.Module):
    def __init__(self, size: int, patch: int, dim: int, layers: int, heads: int, out_dim: int):
        super().__init__()
        self.size = size
        self.patch_embed = nn.Conv2d(4, dim, patch, stride=patch)
        n = size // patch
        self.pos = nn.Parameter(torch.zeros(1, n * n, dim))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Conv2d(dim, out_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        t = self.patch_embed(x)
        b, c, h, w = t.shape
        t = self.encoder(t.flatten(2).transpose(1, 2) + self.pos)
        return self.out(t.transpose(1, 2).reshape(b, c, h, w))


class FuseBlock(nn.Module):
    def __init__(self, cin: int, clocal: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn_act(cin + clocal, cout), conv_bn_act(cout, cout))
        self.head = zero_init(nn.Conv2d(cout, 1, 3, padding=1))

    def forward(self, x: torch.Tensor, local: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, size=local.shape[-2:], mode="bilinear", align_corners=False)
        x = self.body(torch.cat([x, local], dim=1))
        return x, self.head(x)


class MRN(nn.Module):
    def __init__(
        self,
        local_dims: tuple[int, int, int],
        global_size: int,
        global_patch: int,
        global_dim: int,
        global_layers: int,
        global_heads: int,
        fuse_dims: tuple[int, int, int],
        band_radius: tuple[int, int] = (2, 4),
        branches: str = "hybrid",
    ):
        super().__init__()
        if branches not in BRANCHES:
            raise ValueError(f"MRN branches must be one of {BRANCHES}, got {branches!r}")
        self.branches = branches
        c2, c4, c8 = local_dims
        self.global_dim_out = fuse_dims[0]
        self.local2 = nn.Sequential(conv_bn_act(4, c2, 2), conv_bn_act(c2, c2))
        self.local4 = nn.Sequential(conv_bn_act(c2, c4, 2), conv_bn_act(c4, c4))
        self.local8 = nn.Sequential(conv_bn_act(c4, c8, 2), conv_bn_act(c8, c8))
        self.global_branch = (
            GlobalBranch(global_size, global_patch, global_dim, global_layers, global_heads, fuse_dims[0])
            if branches != "local" else None
        )
        f8, f4, f1 = fuse_dims
        self.fuse8 = FuseBlock(f8, c8, f8)
        self.fuse4 = FuseBlock(f8, c4, f4)
        self.fuse2 = nn.Sequential(conv_bn_act(f4 + c2, f1), conv_bn_act(f1, f1))
        self.fuse1 = nn.Sequential(conv_bn_act(f1 + 4, f1), zero_init(nn.Conv2d(f1, 1, 3, padding=1)))
        self.band_radius = band_radius  # dilation of the uncertain band, in cells of 1/8 and 1/4

    def forward(self, image: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """image (B, 3, H, W) and coarse (B, 1, H, W), both in [0, 1] -> alpha (B, 1, H, W) in [0, 1]."""
        return self.forward_all(image, coarse).alpha

    def forward_all(self, image: torch.Tensor, coarse: torch.Tensor) -> MRNOutput:
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (B, 3, H, W), got shape {tuple(image.shape)}")
        if coarse.shape[0] != image.shape[0] or coarse.shape[1] != 1 or coarse.shape[-2:] != image.shape[-2:]:
            raise ValueError(
                f"coarse mask must be (B, 1, H, W) like the image {tuple(image.shape)}, got {tuple(coarse.shape)}"
            )
        h, w = image.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        x = torch.cat([normalize_image(image), coarse * 2.0 - 1.0], dim=1)
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        l2 = self.local2(x)
        l4 = self.local4(l2)
        l8 = self.local8(l4)
        if self.branches == "global":  # ablation: no local detail (the convolutions still set the grids)
            l2, l4, l8 = torch.zeros_like(l2), torch.zeros_like(l4), torch.zeros_like(l8)
        if self.global_branch is not None:
            g = self.global_branch(x)
        else:  # ablation: no global context
            g = x.new_zeros(x.shape[0], self.global_dim_out, l8.shape[-2], l8.shape[-1])
        coarse_p = (x[:, 3:4] + 1.0) * 0.5
        f8, o8 = self.fuse8(g, l8)
        o8 = o8 + coarse_logit(coarse_p, 8)
        f4, o4 = self.fuse4(f8, l4)
        o4 = o4 + coarse_logit(coarse_p, 4)
        f2 = F.interpolate(f4, size=l2.shape[-2:], mode="bilinear", align_corners=False)
        f2 = self.fuse2(torch.cat([f2, l2], dim=1))
        f1 = F.interpolate(f2, size=x.shape[-2:], mode="bilinear", align_corners=False)
        o1 = self.fuse1(torch.cat([f1, x], dim=1)) + coarse_logit(coarse_p, 1)

        a8 = torch.sigmoid(o8)
        a4 = torch.sigmoid(o4)
        size = x.shape[-2:]
        # PRM: 1/4 replaces 1/8 in 1/8's uncertain band, full res replaces that in its own band.
        band8 = F.interpolate(uncertain_band(a8, self.band_radius[0]), size=a4.shape[-2:], mode="nearest")
        up8 = F.interpolate(a8, size=a4.shape[-2:], mode="bilinear", align_corners=False)
        a = up8 * (1.0 - band8) + a4 * band8
        band4 = F.interpolate(uncertain_band(a, self.band_radius[1]), size=size, mode="nearest")
        a_full = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
        a1 = torch.sigmoid(o1)
        alpha = a_full * (1.0 - band4) + a1 * band4

        def crop(t: torch.Tensor) -> torch.Tensor:
            t = F.interpolate(t, size=size, mode="bilinear", align_corners=False) if t.shape[-2:] != size else t
            return t[..., :h, :w]

        return MRNOutput(crop(alpha).clamp(0.0, 1.0), crop(a8), crop(a4), crop(a1))
