"""Checkpoints hold the trained weights and the config; never the frozen MiniLM (it ships in its
own package), so a checkpoint stays small and loads into any machine with that package."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .build import DFIMat, build_dfimat

FROZEN_PREFIX = "iscn.text_encoder."
FORMAT_VERSION = 1


#: What stands in a record's ``init_from`` when it is the record its ``iscn_training`` began from.
SAME_AS_ISCN_INIT = "iscn_training.init_from"
#: What stands in a record's ``iscn_training`` when its MRN went on from a checkpoint on that same ISCN.
SAME_AS_INIT_ISCN = "init_from.iscn_training"


def compact_lineage(record: dict[str, Any]) -> dict[str, Any]:
    """A training record with each repeated ancestor written once.

    A continued run's MRN stage starts from the same checkpoint as its ISCN stage, so both
    ``init_from`` and ``iscn_training.init_from`` held that whole ancestry: every continuation
    doubled the record (the manifest of a model continued four times held 16 copies of the first
    run). The MRN's copy becomes a reference ``{"path", "same_as"}``; nothing is lost. An MRN-only
    continuation (``--init`` an MRN checkpoint, ``--iscn`` the ISCN that checkpoint was trained on)
    held the ISCN's record twice, as ``iscn_training`` and ``init_from.iscn_training``: the first
    becomes the reference then."""
    out = dict(record)
    for key in ("init_from", "iscn_training"):
        if isinstance(out.get(key), dict):
            out[key] = compact_lineage(out[key])
    init, iscn = out.get("init_from"), out.get("iscn_training")
    if isinstance(init, dict) and isinstance(iscn, dict) and "same_as" not in init and init == iscn.get("init_from"):
        out["init_from"] = {"path": init.get("path"), "same_as": SAME_AS_ISCN_INIT}
    init, iscn = out.get("init_from"), out.get("iscn_training")
    if isinstance(init, dict) and isinstance(iscn, dict) and "same_as" not in iscn and iscn == _iscn_record_of(init):
        out["iscn_training"] = {"path": out.get("iscn_checkpoint"), "same_as": SAME_AS_INIT_ISCN}
    return out


def _iscn_record_of(record: dict[str, Any]) -> Any:
    """``record``'s ISCN record, following the references earlier MRN-only steps left."""
    while (isinstance(record.get("iscn_training"), dict) and record["iscn_training"].get("same_as") == SAME_AS_INIT_ISCN
           and isinstance(record.get("init_from"), dict)):
        record = record["init_from"]
    return record.get("iscn_training")


def trainable_state(net: DFIMat) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items() if not k.startswith(FROZEN_PREFIX)}


def save_checkpoint(net: DFIMat, path: Path | str, extra: dict[str, Any] | None = None) -> None:
    """Write atomically (temp file then rename): an interrupted save never destroys the last one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT_VERSION,
        "variant": net.config.variant,
        "config": net.config.to_dict(),
        "model": trainable_state(net),
        "extra": compact_lineage(extra or {}),
    }
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path | str, text_encoder: bool = True) -> tuple[DFIMat, dict[str, Any]]:
    """Rebuild the model a checkpoint was saved from; returns (model, extra)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"checkpoint {path} is not a readable DFIMat checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION or "model" not in payload:
        raise ValueError(f"checkpoint {path} is not a DFIMat checkpoint of format {FORMAT_VERSION}")
    branches = (payload.get("config") or {}).get("mrn_branches", "hybrid")
    net = build_dfimat(payload["variant"], text_encoder=text_encoder, mrn_branches=branches)
    missing, unexpected = net.load_state_dict(payload["model"], strict=False)
    missing = [k for k in missing if not k.startswith(FROZEN_PREFIX)]
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not fit variant {payload['variant']!r}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}")
    return net, payload.get("extra", {})
