"""Graph-by-graph parity of an exported ONNX file with the PyTorch module it came from.

Both sides get identical random inputs shaped as the engine feeds them (several prompt counts,
text lengths and MRN sizes, so the dynamic axes are exercised), and the largest absolute
difference over all outputs is reported. The exporter records these figures in the manifest and
refuses an fp32 graph above ``FP32_BOUND``; the tests check them independently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from model import DFIMat
from plugin.prompts import Prompts, encode_prompts
from plugin.text_tokens import TextTokenizer

from .graphs import GRAPH_IO, graph_module

#: Max abs difference allowed between an fp32 graph and PyTorch.
FP32_BOUND = 1e-4
#: Max abs difference allowed between an fp16 graph and PyTorch, relative to the largest
#: magnitude of the reference output (features are unnormalised; alpha is in [0, 1]).
FP16_RELATIVE_BOUND = 2e-2

#: Descriptions used to check the text encoder (and its int8 copy).
DESCRIPTIONS = (
    "the man in the red coat",
    "woman on the left holding a blue umbrella",
    "the child in the middle with curly hair",
    "person wearing glasses and a grey hoodie, second from the right",
    "tall guy at the back",
    "the bride",
    "a girl with a ponytail sitting on the bench next to her dog",
)


def _random_prompts(rng: np.random.Generator, width: int, height: int, n: int) -> Prompts:
    clicks, scribbles, boxes = [], [], []
    for _ in range(n):
        kind = rng.integers(0, 3)
        if kind == 0:
            clicks.append((rng.uniform(0, width), rng.uniform(0, height), bool(rng.integers(0, 2))))
        elif kind == 1:
            pts = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(rng.integers(1, 5))]
            scribbles.append((pts, bool(rng.integers(0, 2))))
        else:
            x0, y0 = rng.uniform(0, width * 0.6), rng.uniform(0, height * 0.6)
            boxes.append((x0, y0, x0 + rng.uniform(1, width * 0.4), y0 + rng.uniform(1, height * 0.4)))
    return Prompts(clicks=clicks, scribbles=scribbles, boxes=boxes)


def random_cases(name: str, net: DFIMat, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Inputs for graph ``name``: a few cases covering its dynamic axes."""
    rng = np.random.default_rng(seed)
    s = net.config.image_size
    m = s // 4
    if name == "image_encoder":
        return [{"image": rng.random((1, 3, s, s), dtype=np.float32)} for _ in range(2)]
    if name == "mrn":
        return [
            {"image": rng.random((1, 3, h, w), dtype=np.float32),
             "coarse": np.clip(rng.normal(0.5, 0.4, (1, 1, h, w)), 0, 1).astype(np.float32)}
            for h, w in ((64, 64), (96, 160), (200, 136))
        ]
    if name == "text_encoder":
        tok = TextTokenizer(net.iscn.text_encoder.model_dir / "tokenizer.json")
        cases = []
        for text in DESCRIPTIONS[:3] + ("",):  # "" is what the engine encodes without text
            ids, mask = tok([text])
            cases.append({"ids": ids, "mask": mask})
        return cases
    if name == "prompt_decoder":
        # Random feature maps (the decoder's parity does not depend on where they came from).
        d = net.config.dim
        cases = []
        for i, (n_prompts, n_text) in enumerate(((1, 2), (3, 7), (6, 12))):
            levels = [rng.normal(0, 1, (1, d, s // k, s // k)).astype(np.float32) for k in (32, 16, 8, 4)]
            arrays = encode_prompts(_random_prompts(rng, 640, 480, n_prompts), 640, 480)
            text_mask = np.ones((1, n_text), np.float32)
            text_mask[0, -1] = 0.0
            first_round = i == 0
            cases.append({
                "level32": levels[0], "level16": levels[1], "level8": levels[2], "mask_features": levels[3],
                "points": arrays.points, "kinds": arrays.kinds, "labels": arrays.labels, "valid": arrays.valid,
                "text_hidden": rng.normal(0, 1, (1, n_text, 384)).astype(np.float32),
                "text_mask": text_mask,
                "prev_prob": (np.zeros if first_round else lambda sh: rng.random(sh, dtype=np.float32))(
                    (1, 1, m, m)).astype(np.float32),
                "prev_valid": np.array([0.0 if first_round else 1.0], np.float32),
            })
        return cases
    raise ValueError(f"unknown graph {name!r}")


def torch_outputs(name: str, net: DFIMat, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """What the PyTorch module of graph ``name`` returns for ``feeds``."""
    args = [torch.from_numpy(feeds[n]) for n in GRAPH_IO[name][0]]
    with torch.no_grad():
        out = graph_module(name, net)(*args)
    out = out if isinstance(out, tuple) else (out,)
    return [t.numpy() for t in out]


def cpu_session(path: Path) -> ort.InferenceSession:
    """An ONNX Runtime CPU session of ``path`` with quiet logging."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def onnx_outputs(path: Path | ort.InferenceSession, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """What the ONNX file (or an open session of it) returns for ``feeds`` on the CPU."""
    sess = path if isinstance(path, ort.InferenceSession) else cpu_session(path)
    return sess.run(None, feeds)


def max_abs_diff(name: str, net: DFIMat, path: Path, seed: int = 0, relative: bool = False) -> float:
    """Largest |onnx - torch| over every output of every case (optionally / max |torch|)."""
    worst = 0.0
    sess = cpu_session(path)
    for feeds in random_cases(name, net, seed):
        for ref, got in zip(torch_outputs(name, net, feeds), onnx_outputs(sess, feeds), strict=True):
            if ref.shape != got.shape:
                raise AssertionError(f"{path.name}: output shape {got.shape} differs from PyTorch's {ref.shape}")
            diff = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max()) if ref.size else 0.0
            if relative:
                diff /= max(1.0, float(np.abs(ref).max()))
            worst = max(worst, diff)
    return worst


def text_cosines(reference: Path, candidate: Path, tokenizer: Path) -> list[float]:
    """Cosine similarity of mean-pooled hidden states of two text graphs, one per description."""
    tok = TextTokenizer(tokenizer)
    sessions = (cpu_session(reference), cpu_session(candidate))
    out = []
    for text in DESCRIPTIONS:
        ids, mask = tok([text])
        feeds = {"ids": ids, "mask": mask}
        a, b = (onnx_outputs(s, feeds)[0] for s in sessions)
        w = mask[..., None].astype(np.float32)
        va = (a * w).sum(1).ravel() / w.sum()
        vb = (b * w).sum(1).ravel() / w.sum()
        out.append(float(va @ vb / (np.linalg.norm(va) * np.linalg.norm(vb))))
    return out
