"""Shared fixtures. Area-specific fixtures live beside their tests (tests/<area>_fixtures.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixed-seed, untrained DFIMat-S checkpoint: enough to exercise export and the engine."""
    import torch

    from model import build_dfimat, save_checkpoint

    torch.manual_seed(0)
    net = build_dfimat("small")
    path = tmp_path_factory.mktemp("ckpt") / "small_seed0.pt"
    save_checkpoint(net, path, extra={"note": "fixed-seed untrained model for tests"})
    return path


@pytest.fixture(scope="session")
def small_net():
    """DFIMat-S with fixed-seed weights, in eval mode; shared because MiniLM takes seconds to load."""
    import torch

    from model import build_dfimat

    torch.manual_seed(0)
    return build_dfimat("small").eval()


@pytest.fixture(scope="session")
def base_net():
    import torch

    from model import build_dfimat

    torch.manual_seed(0)
    return build_dfimat("base").eval()


@pytest.fixture(scope="session")
def exported_small_models(small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """DFIMat-S exported once per session (tests/export_fixtures.py): ``.models_dir``, ``.checkpoint``."""
    from tests.export_fixtures import export_small

    return export_small(small_checkpoint, tmp_path_factory.mktemp("export"))
