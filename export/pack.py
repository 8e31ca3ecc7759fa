"""Pack exported models folders for shipping: one shared copy of the text encoder, fp16 copies
dropped unless asked for.

    python -m export.pack models/base models/small --shared-text models/text [--keep-fp16]

Both variants use the same frozen MiniLM, so each export holds the same int8 graph and tokenizer
files, byte for byte. Shipping them once (in ``--shared-text``, referred to from each manifest by
a relative path such as ``../text/text_encoder.int8.onnx``) is what lets both models fit the
repository's size budget. The fp16 copies only speed up CUDA; the engine runs the fp32 graphs
when they are absent. A folder that is packed already is left as it is.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from plugin.engine_errors import EngineError
from plugin.models_dir import MANIFEST_NAME, load_manifest, sha256_file

from .exporter import TOKENIZER_FILES, ExportError


def _text_files(manifest: dict[str, Any]) -> list[str]:
    """The manifest's names of the text graph and tokenizer files (as listed in ``files``)."""
    graph = ((manifest.get("graphs") or {}).get("text_encoder") or {}).get("file")
    names = [graph] if graph else []
    names += [n for n in manifest["files"] if Path(n).name in TOKENIZER_FILES]
    return names


def pack_folder(folder: Path, shared: Path, keep_fp16: bool = False, log: Callable[[str], Any] = print) -> dict[str, Any]:
    """Move one export's text files into ``shared`` (or point at identical ones already there),
    drop its fp16 copies, rewrite its manifest; returns the new manifest."""
    folder, shared = Path(folder), Path(shared)
    load_manifest(folder)  # verified before anything moves: never pack a damaged folder
    manifest = json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
    files: dict[str, str] = dict(manifest["files"])
    shared.mkdir(parents=True, exist_ok=True)
    moves: list[tuple[str, Path, Path]] = []
    for name in _text_files(manifest):
        src, dest = (folder / name).resolve(), (shared / Path(name).name).resolve()
        if src == dest:
            continue  # packed already
        if dest.is_file() and sha256_file(dest) != files[name]:  # checked for every file before any moves
            raise ExportError(f"{dest} differs from {src}: models that share a text encoder must hold the "
                              f"same one (re-export them with the same MiniLM and --text-int8 setting)")
        moves.append((name, src, dest))
    renamed: dict[str, str] = {}
    for name, src, dest in moves:
        if dest.is_file():
            src.unlink()
        else:
            shutil.move(str(src), dest)
        renamed[name] = Path(os.path.relpath(dest, folder.resolve())).as_posix()
    for old, new in renamed.items():
        files[new] = files.pop(old)
    graphs = manifest["graphs"]
    text_graph = graphs.get("text_encoder")
    if text_graph and text_graph["file"] in renamed:
        text_graph["file"] = renamed[text_graph["file"]]
    text = manifest.get("text") or {}
    if text.get("tokenizer") in renamed:
        text["tokenizer"] = renamed[text["tokenizer"]]
    if not keep_fp16:
        for graph in graphs.values():
            half = graph.get("fp16_file")
            if half:
                (folder / half).unlink(missing_ok=True)
                files.pop(half, None)
                graph["fp16_file"] = None
    manifest["files"] = files
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2, sort_keys=False), encoding="utf-8")
    tmp.replace(folder / MANIFEST_NAME)
    load_manifest(folder)  # and verified after: every listed file is where the manifest says
    log(f"packed {folder}: text encoder in {shared}, " + ("fp16 copies kept" if keep_fp16 else "no fp16 copies"))
    return manifest


def folder_bytes(folders: list[Path]) -> int:
    """Bytes of every distinct file the folders' manifests list (a shared file counted once)."""
    seen: set[Path] = set()
    for folder in folders:
        manifest = json.loads((Path(folder) / MANIFEST_NAME).read_text(encoding="utf-8"))
        seen.add((Path(folder) / MANIFEST_NAME).resolve())
        seen.update((Path(folder) / n).resolve() for n in manifest["files"])
    return sum(p.stat().st_size for p in seen)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m export.pack", description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="exported models folders")
    ap.add_argument("--shared-text", type=Path, required=True, help="folder for the one shared text encoder")
    ap.add_argument("--keep-fp16", action="store_true", help="keep the fp16 copies for CUDA")
    args = ap.parse_args(argv)
    try:
        for folder in args.folders:
            pack_folder(folder, args.shared_text, args.keep_fp16)
    except (ExportError, EngineError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(args.folders)} folders, {folder_bytes(args.folders) / 1e6:.1f} MB together")
    return 0


if __name__ == "__main__":
    sys.exit(main())
