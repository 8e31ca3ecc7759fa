"""The one place model sizes are chosen: DFIMat (``base``) and DFIMat-S (``small``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from torch import nn

from .iscn import ISCN
from .modeling.text_encoder import make_text_encoder
from .mrn import MRN


@dataclass(frozen=True)
class DFIMatConfig:
    variant: str
    image_size: int  # ISCN's square input side
    encoder_dims: tuple[int, int, int, int]
    encoder_depths: tuple[int, int, int, int]
    dim: int  # decoder width D
    heads: int
    stages: int
    object_queries: int
    mrn_local_dims: tuple[int, int, int]
    mrn_global_size: int
    mrn_global_patch: int
    mrn_global_dim: int
    mrn_global_layers: int
    mrn_global_heads: int
    mrn_fuse_dims: tuple[int, int, int]
    mrn_branches: str = "hybrid"  # "global" / "local" only for the Table 6 ablation

    def to_dict(self) -> dict:
        return asdict(self)


CONFIGS: dict[str, DFIMatConfig] = {
    "base": DFIMatConfig(
        variant="base", image_size=512, encoder_dims=(48, 96, 192, 384), encoder_depths=(2, 2, 6, 2),
        dim=192, heads=6, stages=6, object_queries=8,
        mrn_local_dims=(16, 48, 96), mrn_global_size=256, mrn_global_patch=8, mrn_global_dim=128,
        mrn_global_layers=4, mrn_global_heads=4, mrn_fuse_dims=(96, 48, 16),
    ),
    "small": DFIMatConfig(
        variant="small", image_size=384, encoder_dims=(32, 64, 128, 256), encoder_depths=(1, 1, 3, 1),
        dim=128, heads=4, stages=3, object_queries=4,
        mrn_local_dims=(8, 24, 64), mrn_global_size=192, mrn_global_patch=8, mrn_global_dim=96,
        mrn_global_layers=2, mrn_global_heads=4, mrn_fuse_dims=(64, 24, 8),
    ),
}


class DFIMat(nn.Module):
    """ISCN (locate the person) and MRN (matte it), trained apart and used in sequence."""

    def __init__(self, config: DFIMatConfig, iscn: ISCN, mrn: MRN):
        super().__init__()
        self.config = config
        self.iscn = iscn
        self.mrn = mrn


def build_dfimat(variant: str = "base", text_encoder: bool = True, mrn_branches: str = "hybrid") -> DFIMat:
    """A freshly initialised DFIMat of the named size; ``text_encoder=False`` skips MiniLM
    (text prompts are then refused), for tools that never see text (``DFIMAT_TEXT_ENCODER``
    swaps the package for an exported text graph, see ``modeling.text_encoder``);
    ``mrn_branches`` picks the MRN ablation (see ``model.mrn.BRANCHES``)."""
    if variant not in CONFIGS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {sorted(CONFIGS)}")
    c = replace(CONFIGS[variant], mrn_branches=mrn_branches)
    iscn = ISCN(
        c.image_size, c.encoder_dims, c.encoder_depths, c.dim, c.heads, c.stages, c.object_queries,
        make_text_encoder() if text_encoder else None,
    )
    mrn = MRN(
        c.mrn_local_dims, c.mrn_global_size, c.mrn_global_patch, c.mrn_global_dim,
        c.mrn_global_layers, c.mrn_global_heads, c.mrn_fuse_dims, branches=c.mrn_branches,
    )
    return DFIMat(c, iscn, mrn)


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Parameters the project trains (the frozen MiniLM is shared by all variants and not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
