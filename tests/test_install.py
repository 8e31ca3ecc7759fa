"""install.py against temporary GIMP profiles (a fake HOME): what it copies, that a second run
changes nothing, that --uninstall removes exactly its own files, and how it picks packages."""

from __future__ import annotations

import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import pytest

import install

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    h = tmp_path / "home"
    for v in ("3.0", "2.10"):
        (h / ".config" / "GIMP" / v / "plug-ins").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(h))
    for var in ("APPDATA", "GIMP3_DIRECTORY", "GIMP2_DIRECTORY", "DFIMAT_MODELS"):
        monkeypatch.delenv(var, raising=False)
    return h


@pytest.fixture()
def models(tmp_path: Path) -> Path:
    d = tmp_path / "export_small"
    d.mkdir()
    (d / "mrn.onnx").write_bytes(b"\x08\x01fake graph")
    (d / "manifest.json").write_text(json.dumps({"variant": "small", "format": 1, "files": {"mrn.onnx": "0" * 64}}))
    return d


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*") if p.is_file()}


def test_profile_candidates_cover_every_platform(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "APPDATA": str(tmp_path / "AppData" / "Roaming")}
    got = [str(p.relative_to(tmp_path)) for p in install.profile_candidates("3.0", env=env)]
    assert got == [".config/GIMP/3.0", ".var/app/org.gimp.GIMP/config/GIMP/3.0",
                   "Library/Application Support/GIMP/3.0", "AppData/Roaming/GIMP/3.0"]
    env["GIMP2_DIRECTORY"] = str(tmp_path / "custom")
    assert install.profile_candidates("2.10", env=env)[0] == tmp_path / "custom"
    flatpak = tmp_path / ".var/app/org.gimp.GIMP/config/GIMP/3.0"
    flatpak.mkdir(parents=True)
    targets = install.find_targets([], env={"HOME": str(tmp_path)})
    assert [(t.version, t.profile) for t in targets] == [("3.0", flatpak)]
    assert install.version_of(Path("/x/GIMP/2.10")) == "2.10" and install.version_of(Path("/x/prof")) == "3.0"


def test_install_twice_then_uninstall_exactly(home: Path, models: Path, capsys) -> None:
    p3 = home / ".config/GIMP/3.0/plug-ins"
    p2 = home / ".config/GIMP/2.10/plug-ins"
    (p3 / "someone_else.py").write_text("# another plug-in\n")
    assert install.main(["--models", str(models), "--no-deps"]) == 0

    d = p3 / "dfimat"
    assert (d / "dfimat.py").read_bytes() == (ROOT / "plugin/gimp3/dfimat.py").read_bytes()
    assert os.stat(d / "dfimat.py").st_mode & stat.S_IXUSR
    for rel in ("plugin/gimp_inputs.py", "plugin/worker.py", "plugin/engine.py", "plugin/prompts.py",
                "plugin/gimp3/procedure.py", "plugin/gimp3/gimp_io.py", "models/small/manifest.json",
                "models/small/mrn.onnx"):
        assert (d / rel).is_file(), rel
    assert not (d / "plugin/gimp2").exists()
    assert json.loads((d / "runtime.json").read_text()) == {"models": str(d / "models"), "site_dirs": []}
    manifest = json.loads((d / install.MANIFEST).read_text())
    assert "dfimat/dfimat.py" in manifest["files"] and "dfimat/models/small/mrn.onnx" in manifest["files"]

    assert os.stat(p2 / "dfimat_gimp2.py").st_mode & stat.S_IXUSR
    s = p2 / "dfimat_gimp2_support"
    assert (s / "plugin/worker.py").is_file() and (s / "models/small/manifest.json").is_file()
    worker = json.loads((s / "worker.json").read_text())
    assert worker["support"] == str(s) and worker["python"] == sys.executable

    before = snapshot(home)
    capsys.readouterr()
    assert install.main(["--models", str(models), "--no-deps"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("nothing to change")
    assert snapshot(home) == before

    (d / "plugin" / "__pycache__").mkdir()  # GIMP's Python leaves these behind
    (d / "plugin" / "__pycache__" / "worker.cpython-313.pyc").write_bytes(b"x")
    assert install.main(["--uninstall"]) == 0
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()) == [
        ".config/GIMP/3.0/plug-ins/someone_else.py"]
    assert p3.is_dir() and p2.is_dir()


def test_stale_files_from_an_older_install_are_removed(home: Path, models: Path) -> None:
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", str(home / ".config/GIMP/3.0")]) == 0
    d = home / ".config/GIMP/3.0/plug-ins/dfimat"
    man = json.loads((d / install.MANIFEST).read_text())
    (d / "plugin" / "old_module.py").write_text("")
    man["files"].append("dfimat/plugin/old_module.py")
    (d / install.MANIFEST).write_text(json.dumps(man))
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", str(home / ".config/GIMP/3.0")]) == 0
    assert not (d / "plugin" / "old_module.py").exists()
    assert not (home / ".config/GIMP/2.10/plug-ins/dfimat_gimp2.py").exists()  # --gimp-dir: only that one


def test_an_upgraded_package_makes_gimp_read_the_procedure_again(home: Path, models: Path) -> None:
    """GIMP re-reads a plug-in's procedure (its arguments) only when the entry file's time
    changes: the installed entry file is never older than the package it runs, and an install
    that changes nothing leaves it alone."""
    g3 = str(home / ".config/GIMP/3.0")
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", g3]) == 0
    d = home / ".config/GIMP/3.0/plug-ins/dfimat"
    newest = max(p.stat().st_mtime for p in (d / "plugin").rglob("*.py"))
    assert (d / "dfimat.py").stat().st_mtime >= newest
    os.utime(d / "dfimat.py", (1_000_000_000, 1_000_000_000))  # as an older installer left it
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", g3]) == 0
    touched = (d / "dfimat.py").stat().st_mtime
    assert touched >= newest
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", g3]) == 0
    assert (d / "dfimat.py").stat().st_mtime == touched  # nothing changed: GIMP's cache stands
    (d / "plugin" / "gimp3" / "procedure.py").write_text("# an older version\n")
    assert install.main(["--models", str(models), "--no-deps", "--gimp-dir", g3]) == 0
    assert (d / "plugin" / "gimp3" / "procedure.py").read_text() != "# an older version\n"
    assert (d / "dfimat.py").stat().st_mtime >= (d / "plugin" / "gimp3" / "procedure.py").stat().st_mtime


FAKE_PYTHON = """\
#!{exe}
# Stands in for GIMP's Python: makes a venv layout, records pip's arguments.
import os, sys
venv_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
log = os.environ["FAKE_PY_LOG"]
args = sys.argv[1:]
open(log, "a").write(" ".join(args) + "\\n")
if args[:2] == ["-m", "venv"]:
    os.makedirs(os.path.join(args[-1], "bin"))
    os.makedirs(os.path.join(args[-1], "lib", "site-packages"))
    dst = os.path.join(args[-1], "bin", "python")
    open(dst, "w").write(open(__file__).read())
    os.chmod(dst, 0o755)
elif args[:2] == ["-m", "pip"]:
    open(os.path.join(venv_root, "installed"), "w").write(" ".join(args))
elif args[0] == "-c" and "sysconfig" in args[1]:
    print(os.path.join(venv_root, "lib", "site-packages"))
elif args[0] == "-c" and "import onnxruntime" in args[1]:
    sys.exit(0 if os.path.exists(os.path.join(venv_root, "installed")) else 1)
"""


def fake_python(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    bin_dir = tmp_path / "gimp-python" / "bin"
    bin_dir.mkdir(parents=True)
    py = bin_dir / "python3"
    py.write_text(FAKE_PYTHON.format(exe=sys.executable))
    py.chmod(0o755)
    log = tmp_path / "py.log"
    monkeypatch.setenv("FAKE_PY_LOG", str(log))
    return py, log


def test_runtime_packages_in_a_venv_gpu_or_cpu_and_only_once(home: Path, tmp_path: Path, monkeypatch) -> None:
    py, log = fake_python(tmp_path, monkeypatch)
    tools = tmp_path / "tools"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    g3 = str(home / ".config/GIMP/3.0")
    assert install.main(["--gimp-dir", g3, "--python", str(py)]) == 0
    d = home / ".config/GIMP/3.0/plug-ins/dfimat"
    venv = d / "venv"
    assert (venv / "installed").read_text().split()[-4:] == install.pinned(install.RUNTIME_PACKAGES, True)
    assert install.pinned(install.RUNTIME_PACKAGES, True)[0].startswith("onnxruntime-gpu==")
    lines = log.read_text().splitlines()
    assert lines[0] == f"-m venv --system-site-packages {venv}"
    runtime = json.loads((d / "runtime.json").read_text())
    assert runtime["site_dirs"] == [str(venv / "lib" / "site-packages")]

    n_pip = sum("-m pip" in line for line in log.read_text().splitlines())
    assert install.main(["--gimp-dir", g3, "--python", str(py)]) == 0
    assert sum("-m pip" in line for line in log.read_text().splitlines()) == n_pip  # satisfied: no pip

    smi.unlink()
    assert install.nvidia_gpu() is None
    assert install.pinned(install.RUNTIME_PACKAGES, False)[0].startswith("onnxruntime==")
    assert install.main(["--uninstall", "--gimp-dir", g3]) == 0
    assert not d.exists()


def test_check_reports_what_is_missing(home: Path, models: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    py, _log = fake_python(tmp_path, monkeypatch)
    g3 = str(home / ".config/GIMP/3.0")
    assert install.main(["--check", "--gimp-dir", g3, "--python", str(py)]) == 1
    assert "GIMP 3.0 profile" in capsys.readouterr().out
    assert install.main(["--gimp-dir", g3, "--no-deps", "--models", str(models)]) == 0
    probe = tmp_path / "probe.py"
    probe.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        print("onnxruntime 1.0"); print("numpy 2.0"); print("cv2 MISSING No module named 'cv2'")
        print("tokenizers 0.1"); print("providers CPUExecutionProvider")
        """))
    probe.chmod(0o755)
    capsys.readouterr()
    assert install.main(["--check", "--gimp-dir", g3, "--python", str(probe)]) == 1
    out = capsys.readouterr().out
    assert "installed" in out and "models: small" in out and "cv2 MISSING" in out and "device:" in out


def test_clear_errors(home: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    assert install.main(["--models", str(tmp_path / "nowhere"), "--no-deps"]) == 1
    assert "--models" in capsys.readouterr().err
    monkeypatch.setenv("HOME", str(tmp_path / "empty"))
    assert install.main(["--no-deps"]) == 1
    assert "no GIMP 3.0 or 2.10 profile folder found" in capsys.readouterr().err


def test_a_shared_text_encoder_is_installed_beside_the_models(home: Path, tmp_path: Path) -> None:
    """After ``python -m export.pack`` a manifest lists ``../text/...``: install keeps that layout,
    and refuses a manifest that points anywhere else."""
    root = tmp_path / "models"
    (root / "text").mkdir(parents=True)
    (root / "text" / "text_encoder.int8.onnx").write_bytes(b"text graph")
    for variant in ("small", "base"):
        (root / variant).mkdir()
        (root / variant / "mrn.onnx").write_bytes(variant.encode())
        (root / variant / "manifest.json").write_text(json.dumps(
            {"variant": variant, "format": 1, "files": {"mrn.onnx": "0" * 64, "../text/text_encoder.int8.onnx": "1" * 64}}))
    assert install.main(["--models", str(root), "--no-deps", "--gimp-dir", str(home / ".config/GIMP/3.0")]) == 0
    d = home / ".config/GIMP/3.0/plug-ins/dfimat/models"
    assert (d / "text" / "text_encoder.int8.onnx").read_bytes() == b"text graph"
    assert (d / "base" / "mrn.onnx").read_bytes() == b"base" and (d / "small" / "manifest.json").is_file()
    assert not (d / "small" / "text").exists()

    (root / "small" / "manifest.json").write_text(json.dumps(
        {"variant": "small", "format": 1, "files": {"../../escape.onnx": "0" * 64}}))
    with pytest.raises(install.InstallError, match="outside"):
        install.model_files(root / "small", "small")
