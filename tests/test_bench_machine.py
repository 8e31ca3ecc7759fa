"""The latency bench names the GPU a CUDA row ran on (results.md shows the machine beside each row)."""
from __future__ import annotations

import importlib.util
import os
import stat
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def latency():
    spec = importlib.util.spec_from_file_location("bench_latency", ROOT / "bench" / "latency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def fake_nvidia_smi(folder: Path, body: str) -> None:
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + body + "\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)


def test_gpu_names_come_from_nvidia_smi(latency, tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, 'printf "NVIDIA H200\\n\\nNVIDIA H100 80GB HBM3\\n"')
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    assert latency.gpu_names() == ["NVIDIA H200", "NVIDIA H100 80GB HBM3"]
    assert latency.machine_description().endswith(f"{os.cpu_count()} threads, " +
                                                  latency.platform.system() + " " + latency.platform.release() +
                                                  ", NVIDIA H200, NVIDIA H100 80GB HBM3")


def test_no_gpu_when_nvidia_smi_fails_or_is_missing(latency, tmp_path, monkeypatch):
    fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed" >&2; exit 9')
    monkeypatch.setenv("PATH", str(tmp_path))
    assert latency.gpu_names() == []
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert latency.gpu_names() == []
    assert latency.machine_description().endswith("threads, " + latency.platform.system() + " " +
                                                  latency.platform.release())
