"""export.pack: the two shipped variants share one text encoder, and packing never damages an export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.exporter import ExportError
from export.pack import folder_bytes, main, pack_folder
from plugin.engine import MattingEngine
from plugin.models_dir import load_manifest


def copies(src: Path, root: Path, names: tuple[str, ...]) -> list[Path]:
    out = []
    for name in names:
        shutil.copytree(src, root / name)
        out.append(root / name)
    return out


def test_two_exports_share_one_text_encoder(exported_small_models, tmp_path: Path) -> None:
    src = exported_small_models.models_dir
    a, b = copies(src, tmp_path, ("a", "b"))
    before = folder_bytes([a, b])
    text_before = MattingEngine(src, device="cpu").encode_text("the woman in the red coat")
    assert main([str(a), str(b), "--shared-text", str(tmp_path / "text")]) == 0

    shared = sorted(p.name for p in (tmp_path / "text").iterdir())
    assert "tokenizer.json" in shared and any(n.startswith("text_encoder") for n in shared)
    for folder in (a, b):
        m = load_manifest(folder)  # verifies every sha256, the shared files included
        assert m.graphs["text_encoder"].file.startswith("../text/") and m.tokenizer == "../text/tokenizer.json"
        assert all(g.fp16_file is None for g in m.graphs.values())
        assert not list(folder.glob("*.fp16.onnx")) and not list(folder.glob("tokenizer*"))
        hidden, mask = MattingEngine(folder, device="cpu").encode_text("the woman in the red coat")
        np.testing.assert_array_equal(hidden, text_before[0])
        np.testing.assert_array_equal(mask, text_before[1])
    text_bytes = sum(p.stat().st_size for p in (tmp_path / "text").iterdir())
    assert folder_bytes([a, b]) < before - text_bytes, "the text encoder is counted once and fp16 copies are gone"

    again = json.loads((a / "manifest.json").read_text())
    assert pack_folder(a, tmp_path / "text", log=lambda _m: None) == again, "packing twice changes nothing"


def test_a_different_text_encoder_is_refused_and_the_export_left_whole(exported_small_models, tmp_path: Path) -> None:
    src = exported_small_models.models_dir
    (a,) = copies(src, tmp_path, ("a",))
    pack_folder(a, tmp_path / "text", keep_fp16=True, log=lambda _m: None)
    assert list(a.glob("*.fp16.onnx")), "--keep-fp16 keeps them"
    (tmp_path / "text" / "tokenizer.json").write_text("{}")  # someone else's tokenizer in the shared folder
    (c,) = copies(src, tmp_path, ("c",))
    files_before = sorted(p.name for p in c.iterdir())
    with pytest.raises(ExportError, match="same one"):
        pack_folder(c, tmp_path / "text", log=lambda _m: None)
    assert sorted(p.name for p in c.iterdir()) == files_before
    load_manifest(c)  # still a valid export
