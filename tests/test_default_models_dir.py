"""Where the engine looks when no models folder is named."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin.models_dir import DEFAULT_VARIANT, MANIFEST_NAME, MODELS_ENV, default_models_dir


def test_a_folder_of_variants_gives_the_default_variant(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / DEFAULT_VARIANT).mkdir()
    (tmp_path / DEFAULT_VARIANT / MANIFEST_NAME).write_text("{}")
    (tmp_path / "base").mkdir()
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert default_models_dir() == tmp_path / DEFAULT_VARIANT


def test_a_single_export_is_used_as_it_is(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / MANIFEST_NAME).write_text("{}")
    (tmp_path / DEFAULT_VARIANT).mkdir()
    (tmp_path / DEFAULT_VARIANT / MANIFEST_NAME).write_text("{}")
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    assert default_models_dir() == tmp_path


def test_without_the_variable_the_repository_models_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MODELS_ENV, raising=False)
    got = default_models_dir()
    repo_models = Path(__file__).resolve().parents[1] / "models"
    assert got in (repo_models, repo_models / DEFAULT_VARIANT)
