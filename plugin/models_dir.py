"""Where the exported models live and what ``manifest.json`` promises about them (no torch).

The exporter (export/) writes the manifest; the engine reads it here and refuses a folder whose
files are missing, corrupt (sha256 differs) or not what the manifest says, naming the file, so a
half-copied or hand-edited models folder never yields a silently wrong matte.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engine_errors import EngineError

MANIFEST_NAME = "manifest.json"
#: Bumped when the manifest's layout changes; the engine refuses other formats.
MANIFEST_FORMAT = 1
#: Graphs every models folder holds (``text_encoder`` may be absent for text-free models).
GRAPH_NAMES = ("image_encoder", "prompt_decoder", "text_encoder", "mrn")
REQUIRED_GRAPHS = ("image_encoder", "prompt_decoder", "mrn")
#: Environment variable naming the default models folder.
MODELS_ENV = "DFIMAT_MODELS"


#: The shipped model a caller gets when it names none: the one that runs well on a CPU.
DEFAULT_VARIANT = "small"


def default_models_dir(variant: str | None = None) -> Path:
    """``$DFIMAT_MODELS`` when set, else the repository's ``models/`` beside ``plugin/``.

    Either may hold one exported model or one folder per variant (``small/``, ``base/``, as the
    repository ships them); in the latter case the folder of ``variant`` (the default variant
    when None) is returned. When none fits, the root comes back without a variant (so
    ``load_manifest`` can say what is missing), and an error naming where it looked with one."""
    env = os.environ.get(MODELS_ENV)
    root = Path(env) if env else Path(__file__).resolve().parent.parent / "models"
    try:
        return find_models(variant, [root])
    except EngineError:
        if variant is not None:
            raise
        return root


def _manifest_variant(directory: Path) -> str | None:
    path = directory / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineError(f"{path}: unreadable manifest: {exc}") from exc
    return data.get("variant") if isinstance(data, dict) else None


def find_models(variant: str | None, roots: Sequence[str | os.PathLike[str]]) -> Path:
    """The one place a models folder is chosen: the first root that is itself an export of
    ``variant`` (of any variant when None) or holds one as ``<root>/<variant>/`` (the default
    variant when None). Raises EngineError naming every place it looked, so a user who picked
    "base" without installing it learns where to put it."""
    wanted = variant or DEFAULT_VARIANT
    looked: list[str] = []
    for root in map(Path, roots):
        if (root / MANIFEST_NAME).is_file():
            held = _manifest_variant(root)
            if variant is None or held in (None, variant):
                return root
            looked.append(f"{root} (holds '{held}')")
        else:
            looked.append(str(root))
        if (root / wanted / MANIFEST_NAME).is_file():
            return root / wanted
        looked.append(str(root / wanted))
    raise EngineError(f"DFIMat models for '{wanted}' not found (looked in: {', '.join(looked) or 'nowhere'})")


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks so large graphs need little memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class GraphInfo:
    """One graph as the manifest describes it: its files and its inputs' and outputs' names."""

    name: str
    file: str
    fp16_file: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of a models folder."""

    directory: Path
    model: str
    variant: str
    version: str
    image_size: int
    mask_size: int
    graphs: dict[str, GraphInfo]
    tokenizer: str | None
    max_text_tokens: int
    files: dict[str, str]
    raw: dict[str, Any]

    def path(self, name: str) -> Path:
        return self.directory / name


def _require(d: dict[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise EngineError(f"{where}: missing field {key!r}")
    return d[key]


def parse_manifest(directory: Path, data: dict[str, Any]) -> Manifest:
    """Check the manifest's structure; raise EngineError naming the wrong field."""
    where = str(directory / MANIFEST_NAME)
    if data.get("format") != MANIFEST_FORMAT:
        raise EngineError(f"{where}: format {data.get('format')!r} is not {MANIFEST_FORMAT}; re-export the models")
    graphs_raw = _require(data, "graphs", where)
    graphs: dict[str, GraphInfo] = {}
    for name in GRAPH_NAMES:
        g = graphs_raw.get(name)
        if g is None:
            if name in REQUIRED_GRAPHS:
                raise EngineError(f"{where}: graph {name!r} is not listed")
            continue
        graphs[name] = GraphInfo(
            name=name,
            file=str(_require(g, "file", f"{where} graph {name}")),
            fp16_file=g.get("fp16_file"),
            inputs=tuple(i["name"] for i in _require(g, "inputs", f"{where} graph {name}")),
            outputs=tuple(o["name"] for o in _require(g, "outputs", f"{where} graph {name}")),
        )
    text = data.get("text") or {}
    image_size = int(_require(data, "image_size", where))
    return Manifest(
        directory=directory,
        model=str(_require(data, "model", where)),
        variant=str(_require(data, "variant", where)),
        version=str(_require(data, "version", where)),
        image_size=image_size,
        mask_size=int(data.get("mask_size", image_size // 4)),
        graphs=graphs,
        tokenizer=text.get("tokenizer"),
        max_text_tokens=int(text.get("max_tokens", 32)),
        files=dict(_require(data, "files", where)),
        raw=data,
    )


def verify_files(manifest: Manifest, names: list[str] | None = None) -> None:
    """Every listed file exists and has its recorded sha256; raise EngineError naming the first that does not."""
    for name in names if names is not None else sorted(manifest.files):
        if name not in manifest.files:
            raise EngineError(f"{manifest.path(name)}: not listed in {MANIFEST_NAME} (no checksum to trust it by)")
        path = manifest.path(name)
        if not path.is_file():
            raise EngineError(f"model file missing: {path}")
        if sha256_file(path) != manifest.files[name]:
            raise EngineError(f"model file corrupt or replaced (sha256 differs from {MANIFEST_NAME}): {path}")


def load_manifest(directory: str | Path | None = None, verify: bool = True) -> Manifest:
    """Read and (by default) verify a models folder; ``None`` means ``default_models_dir()``."""
    directory = Path(directory) if directory is not None else default_models_dir()
    path = directory / MANIFEST_NAME
    if not directory.is_dir():
        raise EngineError(
            f"models folder not found: {directory} (export one with `python -m export`, "
            f"or point {MODELS_ENV} / --models at it)"
        )
    if not path.is_file():
        raise EngineError(f"models folder has no {MANIFEST_NAME}: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineError(f"{path}: unreadable manifest: {exc}") from exc
    if not isinstance(data, dict):
        raise EngineError(f"{path}: manifest is not a JSON object")
    manifest = parse_manifest(directory, data)
    needed = [g.file for g in manifest.graphs.values()] + [g.fp16_file for g in manifest.graphs.values() if g.fp16_file]
    if manifest.tokenizer:
        needed.append(manifest.tokenizer)
    for name in needed:
        if name not in manifest.files:
            raise EngineError(f"{manifest.path(name)}: not listed in the files of {path}")
    if verify:
        verify_files(manifest)
    return manifest
