"""export.recover: a models folder back to a checkpoint (the repository ships graphs, not .pt files)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(checkpoint, models folder) of a DFIMat-S whose every weight and BatchNorm statistic is
    non-trivial, as after training (an untrained model's exact zeros and ones are simplified out
    of the graphs, which changes their structure)."""
    from export import ExportOptions, export_models
    from model import build_dfimat, save_checkpoint

    work = tmp_path_factory.mktemp("recover")
    g = torch.Generator().manual_seed(7)
    net = build_dfimat("small")
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not name.startswith("iscn.text_encoder."):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05 + (1.0 if p.dim() == 1 and "norm" in name else 0.0))
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    ckpt = work / "small.pt"
    save_checkpoint(net, ckpt, extra={"metrics": {"sad": 9.5}, "step": 12})
    export_models(ExportOptions(checkpoint=ckpt, out=work / "models", fp16=False, check=False, log=lambda _m: None))
    return ckpt, work / "models"


def test_recovered_checkpoint_is_the_exported_one(trained_like: tuple[Path, Path], tmp_path: Path) -> None:
    """Every ISCN weight comes back as it was; MRN (its BatchNorms folded into the convolutions by
    the export) gives the same alphas; the manifest's record travels into the checkpoint."""
    from export.recover import recover
    from model import load_checkpoint

    ckpt, models = trained_like
    out = recover(models, tmp_path / "back.pt", log=lambda _m: None)
    back, extra = load_checkpoint(out, text_encoder=False)
    orig, orig_extra = load_checkpoint(ckpt, text_encoder=False)
    b, o = back.state_dict(), orig.state_dict()
    assert b.keys() == o.keys()
    for name in o:
        if not name.startswith("mrn."):
            torch.testing.assert_close(b[name], o[name], rtol=0, atol=1e-6, msg=name)
    back.eval()
    orig.eval()
    g = torch.Generator().manual_seed(3)
    image, coarse = torch.rand(1, 3, 64, 80, generator=g), torch.rand(1, 1, 64, 80, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(back.mrn(image, coarse), orig.mrn(image, coarse), rtol=0, atol=1e-5)
    manifest = json.loads((models / "manifest.json").read_text())
    assert extra["version"] == manifest["version"] and extra["metrics"] == orig_extra["metrics"] == {"sad": 9.5}
    assert extra["step"] == 12
    assert extra["recovered_from"]["files"] == manifest["files"] and extra["recovered_from"]["max_abs_diff"] < 1e-4


def test_a_folder_this_code_did_not_export_is_refused(trained_like: tuple[Path, Path], tmp_path: Path) -> None:
    """Graphs of another structure (here: another graph under the decoder's name) and a folder
    without a manifest get a specific error and no checkpoint."""
    from export.recover import RecoverError, main, recover

    odd = tmp_path / "odd"
    shutil.copytree(trained_like[1], odd)
    shutil.copy(odd / "mrn.onnx", odd / "prompt_decoder.onnx")
    with pytest.raises(RecoverError, match="nodes differ from what this exporter writes"):
        recover(odd, tmp_path / "x.pt", log=lambda _m: None)
    assert not (tmp_path / "x.pt").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([str(empty), "--out", str(tmp_path / "y.pt")]) == 2
    assert not (tmp_path / "y.pt").exists()


def test_tracing_finds_each_weight_form() -> None:
    """The tracer names the parameter behind an initializer that holds it as is, transposed,
    reshaped, or folded into a convolution with its BatchNorm; a graph constant traces to None."""
    from export.recover import _folded_pairs, probe_model, trace, trained_parameters
    from model import build_dfimat

    config = json.loads(json.dumps(build_dfimat("small", text_encoder=False).config.to_dict()))
    probe = probe_model(config)
    params = {n: p.detach().numpy() for n, p in trained_parameters(probe).items()}
    assert len({v.tobytes() for v in params.values()}) == len(params), "probe values are distinct"
    folded = _folded_pairs(probe)
    name2d = next(n for n, v in params.items() if v.ndim == 2 and v.shape[0] != v.shape[1])
    dim = probe.iscn.decoder.dim
    assert trace(params[name2d], params, folded, dim).kind == "as_is"
    assert trace(params[name2d].T.copy(), params, folded, dim).target == name2d
    assert trace(params[name2d].reshape(1, -1), params, folded, dim).kind == "reshaped"
    bn, (_conv, w, b) = next(iter(folded.items()))
    assert trace(w, params, folded, dim).kind == "folded_weight" and trace(b, params, folded, dim).target == bn
    assert trace(np.arange(7, dtype=np.float32), params, folded, dim) is None


def _nudge_constant(folder: Path, graph: str, delta: float) -> str:
    """Add ``delta`` to the first float graph constant (not a weight) of ``folder``'s ``graph``;
    its name."""
    import onnx
    from onnx import numpy_helper

    path = folder / f"{graph}.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        value = numpy_helper.to_array(init)
        if "Constant" in init.name and value.dtype == np.float32 and value.size > 1:
            init.CopyFrom(numpy_helper.from_array((value + np.float32(delta)).astype(np.float32), init.name))
            onnx.save(model, str(path))
            return init.name
    raise AssertionError(f"{graph} has no float constant table")


def test_graph_constants_match_to_rounding_not_beyond(trained_like: tuple[Path, Path], tmp_path: Path) -> None:
    """A constant table the model computes (the sampler's sine frequencies) rounds an ulp apart
    on another machine: still this code's folder. A constant off by more is another model's."""
    from export.recover import RecoverError, recover, same_constant

    assert same_constant(np.float32([1.0, 0.42169648]), np.float32([1.0, 0.4216965]))
    assert not same_constant(np.float32([1.0, 0.42]), np.float32([1.0, 0.43]))
    assert not same_constant(np.int64([1, -1, 128]), np.int64([1, -1, 127]))
    assert not same_constant(np.float32([1.0]), np.float32([1.0, 1.0]))

    rounded = tmp_path / "rounded"
    shutil.copytree(trained_like[1], rounded)
    _nudge_constant(rounded, "prompt_decoder", 3e-8)
    assert recover(rounded, tmp_path / "r.pt", log=lambda _m: None).is_file()

    other = tmp_path / "other"
    shutil.copytree(trained_like[1], other)
    name = _nudge_constant(other, "prompt_decoder", 1e-2)
    with pytest.raises(RecoverError, match=f"initializer {name} comes from no parameter"):
        recover(other, tmp_path / "o.pt", log=lambda _m: None)
    assert not (tmp_path / "o.pt").exists()
