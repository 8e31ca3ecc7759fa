#!/usr/bin/env python3
"""Install DFIMat into GIMP 3 and GIMP 2.10 with one command: ``python install.py``.

It finds GIMP's profile folders, copies the plug-in and the models, and gives the plug-in the
runtime packages GIMP's Python lacks (ONNX Runtime, numpy, OpenCV, tokenizers) in a venv beside
it. Every file it writes is listed in a manifest so ``--uninstall`` removes exactly those, and
a second run changes nothing. See docs/install.md.

    python install.py                  # every GIMP found: plug-in, models, packages
    python install.py --check          # what is installed, GIMP versions, packages, device
    python install.py --uninstall      # remove what install.py installed
    python install.py --gimp-dir ~/.config/GIMP/3.0 --models path/to/models --no-deps
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent
PLUGIN_SRC = REPO / "plugin"
MANIFEST = "dfimat-install.json"
GIMP3_FOLDER = "dfimat"  # plug-ins/dfimat/dfimat.py
GIMP2_FILE = "dfimat_gimp2.py"  # plug-ins/dfimat_gimp2.py (GIMP 2.10 reads the top folder)
GIMP2_SUPPORT = "dfimat_gimp2_support"  # its Python 3 side: package, models, venv
VERSIONS = ("3.0", "2.10")
#: Runtime packages the plug-in's engine imports; versions come from requirements.txt.
RUNTIME_PACKAGES = ("onnxruntime", "numpy", "opencv-python-headless", "tokenizers")
#: Modules of the plugin package the installed plug-in needs (never the GIMP 2 file).
SKIP_PARTS = {"__pycache__", "gimp2"}


class InstallError(RuntimeError):
    """Something the user must fix; the message says what."""


@dataclass
class Target:
    """One GIMP profile to install into."""

    version: str  # "3.0" or "2.10"
    profile: Path

    @property
    def plugins(self) -> Path:
        return self.profile / "plug-ins"

    @property
    def home(self) -> Path:
        """Folder holding the manifest, the package copy, the models and the venv."""
        return self.plugins / (GIMP3_FOLDER if self.version == "3.0" else GIMP2_SUPPORT)


@dataclass
class Report:
    changed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        self.notes.append(text)
        print(text)


# ---- finding GIMP ----------------------------------------------------------------------------


def profile_candidates(version: str, home: Path | None = None, env: dict[str, str] | None = None) -> list[Path]:
    """Where GIMP ``version`` keeps its profile on this system (Linux, Flatpak, macOS, Windows)."""
    env = dict(os.environ if env is None else env)
    home = Path(env.get("HOME", str(Path.home()))) if home is None else home
    out = []
    override = env.get("GIMP3_DIRECTORY" if version.startswith("3") else "GIMP2_DIRECTORY")
    if override:
        out.append(Path(override))
    out += [
        home / ".config" / "GIMP" / version,
        home / ".var" / "app" / "org.gimp.GIMP" / "config" / "GIMP" / version,
        home / "Library" / "Application Support" / "GIMP" / version,
    ]
    if env.get("APPDATA"):
        out.append(Path(env["APPDATA"]) / "GIMP" / version)
    if version == "2.10":  # GIMP 2.10 before 2.10.? on Linux used ~/.gimp-2.10 too
        out.append(home / ".gimp-2.10")
    return out


def find_targets(gimp_dirs: list[str], env: dict[str, str] | None = None) -> list[Target]:
    """Profiles to install into: ``--gimp-dir`` ones, else every existing GIMP 3 / 2.10 profile."""
    if gimp_dirs:
        return [Target(version_of(Path(d)), Path(d).expanduser()) for d in gimp_dirs]
    found = []
    for version in VERSIONS:
        for cand in profile_candidates(version, env=env):
            if cand.is_dir():
                found.append(Target(version, cand))
                break
    return found


def version_of(profile: Path) -> str:
    """GIMP version a profile folder belongs to, from its name (``.../GIMP/2.10`` is 2.10)."""
    name = profile.name.lower()
    return "2.10" if name.startswith("2.") or name.startswith(".gimp-2") else "3.0"


def gimp_python(version: str, given: str | None) -> str:
    """The Python the plug-in will run under, so its packages match that Python.

    GIMP 3 runs plug-ins with the system's python3 (Linux) or its bundled python (Windows,
    macOS); we take the first that has GIMP 3's typelib. GIMP 2.10's worker is any Python 3."""
    if given:
        return given
    if version == "2.10":
        return sys.executable
    cands = ["/usr/bin/python3", shutil.which("python3") or "", sys.executable]
    cands += [r"C:\Program Files\GIMP 3\bin\python.exe", "/Applications/GIMP.app/Contents/MacOS/python3"]
    probe = "import gi; gi.require_version('Gimp', '3.0')"
    for c in cands:
        if c and Path(c).exists() and _run([c, "-c", probe]).returncode == 0:
            return c
    return sys.executable


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, **kw)
    except OSError as exc:
        return subprocess.CompletedProcess(cmd, 127, "", str(exc))


def gpu_names() -> list[str]:
    """The NVIDIA GPUs' names from nvidia-smi; none where it is missing or fails. Also the latency
    bench's source for the card a CUDA row ran on (bench/latency.py imports it)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        res = subprocess.run([exe, "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return []
    if res.returncode != 0:
        return []
    return [line.strip() for line in res.stdout.splitlines() if line.strip()]


def nvidia_gpu() -> str | None:
    """The first NVIDIA GPU, or None (then the CPU package is installed)."""
    names = gpu_names()
    return names[0] if names else None


def pinned(packages: tuple[str, ...], gpu: bool) -> list[str]:
    """Requirement strings with the versions chosen in requirements.txt (the one place)."""
    pins = {}
    req = REPO / "requirements.txt"
    if req.is_file():
        for line in req.read_text().splitlines():
            line = line.split("#")[0].strip()
            if "==" in line:
                name, ver = line.split("==", 1)
                pins[name.strip().lower()] = ver.strip()
    out = []
    for p in packages:
        name = "onnxruntime-gpu" if (p == "onnxruntime" and gpu) else p
        ver = pins.get(p)
        out.append(f"{name}=={ver}" if ver else name)
    return out


# ---- copying with a manifest -----------------------------------------------------------------


def _copy(src: Path, dst: Path, files: list[str], base: Path, report: Report, mode: int = 0o644) -> None:
    files.append(str(dst.relative_to(base)))
    if dst.is_file() and filecmp.cmp(src, dst, shallow=False) and (dst.stat().st_mode & 0o777) == mode:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    dst.chmod(mode)
    report.changed.append(str(dst))


def _write_text(dst: Path, text: str, files: list[str], base: Path, report: Report) -> None:
    files.append(str(dst.relative_to(base)))
    if dst.is_file() and dst.read_text(encoding="utf-8") == text:
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text, encoding="utf-8")
    report.changed.append(str(dst))


def _package_files() -> list[Path]:
    return sorted(
        p for p in PLUGIN_SRC.rglob("*.py")
        if not SKIP_PARTS.intersection(p.relative_to(PLUGIN_SRC).parts[:-1]) or p.parent == PLUGIN_SRC
    )


def model_sources(models: Path | None) -> dict[str, Path]:
    """Exported model folders to install, by variant: ``--models DIR`` or the repo's models/.

    DIR may be one export (holding manifest.json) or a folder of them (``small/``, ``base/``)."""
    root = models if models is not None else REPO / "models"
    if not root.is_dir():
        if models is not None:
            raise InstallError(f"--models {models}: no such folder")
        return {}
    if (root / "manifest.json").is_file():
        try:
            variant = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["variant"]
        except (ValueError, KeyError) as exc:
            raise InstallError(f"{root / 'manifest.json'}: not a DFIMat models manifest ({exc})") from exc
        return {str(variant): root}
    found = {p.name: p for p in sorted(root.iterdir()) if (p / "manifest.json").is_file()}
    if models is not None and not found:
        raise InstallError(f"--models {models}: no manifest.json in it or in its subfolders; export with `python -m export`")
    return found


def model_files(src: Path, variant: str) -> list[tuple[Path, Path]]:
    """(file, its place under the installed models folder) for one export: its manifest and every
    file the manifest lists, under ``<variant>/``; a listed file in a folder beside the export (the
    shared text encoder of ``python -m export.pack``) keeps its place beside it, so the manifest's
    relative paths still hold."""
    manifest = src / "manifest.json"
    try:
        listed = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise InstallError(f"{manifest}: not a DFIMat models manifest ({exc})") from exc
    here = src.resolve()
    out: list[tuple[Path, Path]] = [(manifest, Path(variant) / "manifest.json")]
    for name in sorted(listed):
        f = (src / name).resolve()
        if here in f.parents:
            rel = Path(variant) / f.relative_to(here)
        elif here.parent in f.parents:
            rel = f.relative_to(here.parent)
        else:
            raise InstallError(f"{manifest}: file {name!r} lies outside {here.parent}")
        if not f.is_file():
            raise InstallError(f"{manifest}: listed file missing: {f}")
        out.append((f, rel))
    return out


def install_target(t: Target, args: argparse.Namespace, report: Report) -> None:
    """Plug-in files, models, runtime packages and the manifest for one GIMP profile."""
    base = t.plugins
    files: list[str] = []
    home = t.home
    if t.version == "3.0":
        entry_src, entry = PLUGIN_SRC / "gimp3" / "dfimat.py", home / "dfimat.py"
    else:
        entry_src, entry = PLUGIN_SRC / "gimp2" / GIMP2_FILE, base / GIMP2_FILE
    _copy(entry_src, entry, files, base, report, 0o755)
    package = []
    for src in _package_files():
        package.append(home / "plugin" / src.relative_to(PLUGIN_SRC))
        _copy(src, package[-1], files, base, report)
    if entry.stat().st_mtime < max(p.stat().st_mtime for p in package):
        # GIMP keeps a plug-in's procedures (its arguments, the dialog's fields) in pluginrc until
        # the entry file's time changes; the GIMP 3 procedure is declared in plugin/gimp3/, so an
        # upgrade that changed only the package would run with the old arguments.
        os.utime(entry)

    models = model_sources(Path(args.models).expanduser() if args.models else None)
    for variant, src in models.items():
        for f, rel in model_files(src, variant):
            _copy(f, home / "models" / rel, files, base, report)
    if not models:
        report.say("  note: no models to install (export them with `python -m export`, then --models DIR); "
                   "the plug-in will say so until then")

    venv = home / "venv"
    site_dirs: list[str] = []
    python = gimp_python(t.version, args.python)
    if not args.no_deps:
        site_dirs = [ensure_runtime(venv, python, report)]
    elif venv.is_dir():
        site_dirs = [venv_site(venv)]
    config = {"site_dirs": site_dirs, "models": str(home / "models")}
    if t.version == "3.0":
        _write_text(home / "runtime.json", json.dumps(config, indent=1, sort_keys=True) + "\n", files, base, report)
    else:
        worker_py = str(venv_python(venv)) if site_dirs else python
        config["python"] = worker_py
        config["support"] = str(home)
        _write_text(home / "worker.json", json.dumps(config, indent=1, sort_keys=True) + "\n", files, base, report)

    manifest = {"format": 1, "version": t.version, "files": sorted(files),
                "venv": "venv" if venv.is_dir() and not args.no_deps else None}
    old = home / MANIFEST
    if old.is_file():
        prev = json.loads(old.read_text(encoding="utf-8"))
        for stale in sorted(set(prev.get("files", [])) - set(files)):  # left over from an older version
            p = base / stale
            if p.is_file():
                p.unlink()
                report.changed.append(f"removed {p}")
        if prev.get("venv") and not manifest["venv"]:
            manifest["venv"] = prev["venv"]  # --no-deps keeps an existing venv
    _write_text(old, json.dumps(manifest, indent=1, sort_keys=True) + "\n", [], base, report)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def venv_site(venv: Path) -> str:
    res = _run([str(venv_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    if res.returncode != 0:
        raise InstallError(f"the venv {venv} does not run: {res.stderr.strip()}")
    return res.stdout.strip()


def ensure_runtime(venv: Path, python: str, report: Report) -> str:
    """A venv (seeing the system's packages, e.g. GIMP's gi) with the runtime packages.

    Skipped when the venv already has exactly what this run would install (idempotent)."""
    gpu = nvidia_gpu()
    reqs = pinned(RUNTIME_PACKAGES, gpu is not None)
    stamp = venv / "dfimat-requirements.txt"
    want = "\n".join([f"# python: {python}", *reqs]) + "\n"
    check = "import onnxruntime, numpy, cv2, tokenizers"
    if stamp.is_file() and stamp.read_text() == want and _run([str(venv_python(venv)), "-c", check]).returncode == 0:
        return venv_site(venv)
    if not venv_python(venv).exists():
        res = _run([python, "-m", "venv", "--system-site-packages", str(venv)])
        if res.returncode != 0:
            raise InstallError(f"could not create a venv with {python}: {res.stderr.strip() or res.stdout.strip()}"
                               " (on Debian/Ubuntu: apt install python3-venv)")
        report.changed.append(f"created {venv}")
    report.say(f"  installing {' '.join(reqs)} for {python}" + (f" (GPU: {gpu})" if gpu else " (no NVIDIA GPU found)"))
    res = subprocess.run([str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", "-q", *reqs])
    if res.returncode != 0:
        raise InstallError(f"pip could not install {' '.join(reqs)} into {venv} (see pip's message above); "
                           "fix the network/proxy or use --no-deps and install them yourself")
    stamp.write_text(want)
    report.changed.append(f"packages in {venv}")
    return venv_site(venv)


def uninstall_target(t: Target, report: Report) -> None:
    """Remove exactly the files the manifest lists, the venv it made, then empty folders."""
    man = t.home / MANIFEST
    if not man.is_file():
        report.say(f"  nothing installed by install.py in {t.plugins}")
        return
    data = json.loads(man.read_text(encoding="utf-8"))
    dirs = set()
    for rel in data.get("files", []):
        p = t.plugins / rel
        if p.is_file() or p.is_symlink():
            p.unlink()
            report.changed.append(f"removed {p}")
        dirs.update(q for q in p.parents if t.plugins in q.parents)
    if data.get("venv"):
        shutil.rmtree(t.home / data["venv"], ignore_errors=True)
        report.changed.append(f"removed {t.home / data['venv']}")
    man.unlink()
    dirs.add(t.home)
    for d in sorted(dirs, key=lambda q: len(q.parts), reverse=True):
        pyc = d / "__pycache__"
        if pyc.is_dir():
            shutil.rmtree(pyc)
        if d.is_dir() and not any(d.iterdir()):
            d.rmdir()


# ---- --check ---------------------------------------------------------------------------------


def gimp_versions() -> list[str]:
    out = []
    for exe in ("gimp-console-3.0", "gimp-3.0", "gimp", "gimp-console-2.10", "gimp-2.10"):
        path = shutil.which(exe)
        if path:
            res = _run([path, "--version"], timeout=60)
            line = (res.stdout or res.stderr).strip().splitlines()
            out.append(f"{exe}: {line[-1] if line else 'no version output'}")
    return out


def check(targets: list[Target], args: argparse.Namespace, report: Report) -> int:
    """Print what is installed where and whether it can run; exit 1 when something is missing."""
    problems = 0
    report.say("GIMP programs: " + ("; ".join(gimp_versions()) or "none on PATH"))
    gpu = nvidia_gpu()
    report.say(f"device: {'NVIDIA GPU: ' + gpu if gpu else 'no NVIDIA GPU (CPU inference)'}")
    if not targets:
        report.say("no GIMP 3 or 2.10 profile found (start GIMP once, or pass --gimp-dir)")
        return 1
    for t in targets:
        man = t.home / MANIFEST
        report.say(f"GIMP {t.version} profile {t.profile}: " + ("installed" if man.is_file() else "NOT installed"))
        if not man.is_file():
            problems += 1
            continue
        models = sorted(p.parent.name for p in (t.home / "models").glob("*/manifest.json"))
        report.say(f"  models: {', '.join(models) or 'none'}")
        problems += not models
        venv = t.home / "venv"
        py = str(venv_python(venv)) if venv_python(venv).exists() else gimp_python(t.version, args.python)
        probe = ("import importlib; mods=['onnxruntime','numpy','cv2','tokenizers']\n"
                 "for m in mods:\n"
                 "  try:\n    v=importlib.import_module(m); print(m, getattr(v,'__version__','?'))\n"
                 "  except Exception as e: print(m, 'MISSING', e)\n"
                 "import onnxruntime as o; print('providers', ','.join(o.get_available_providers()))\n")
        res = _run([py, "-c", probe])
        for line in (res.stdout + res.stderr).strip().splitlines():
            report.say(f"  {line}")
        problems += res.returncode != 0 or "MISSING" in res.stdout
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Install the DFIMat plug-in into GIMP 3 and GIMP 2.10.")
    ap.add_argument("--gimp-dir", action="append", default=[],
                    help="a GIMP profile folder (e.g. ~/.config/GIMP/3.0); repeatable; default: all found")
    ap.add_argument("--models", help="exported models folder (default: the repository's models/)")
    ap.add_argument("--python", help="the Python GIMP runs plug-ins with (default: detected)")
    ap.add_argument("--no-deps", action="store_true", help="do not install runtime packages")
    ap.add_argument("--check", action="store_true", help="report GIMP versions, packages and device")
    ap.add_argument("--uninstall", action="store_true", help="remove what install.py installed")
    args = ap.parse_args(argv)
    report = Report()
    targets = find_targets(args.gimp_dir)
    try:
        if args.check:
            return check(targets, args, report)
        if not targets:
            raise InstallError("no GIMP 3.0 or 2.10 profile folder found; start GIMP once so it creates "
                               "one, or pass --gimp-dir PROFILE (e.g. ~/.config/GIMP/3.0)")
        for t in targets:
            print(f"GIMP {t.version}: {t.plugins}")
            if args.uninstall:
                uninstall_target(t, report)
            else:
                install_target(t, args, report)
    except InstallError as exc:
        print(f"install.py: error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(report.changed)} change(s)" if report.changed else "nothing to change")
    return 0


if __name__ == "__main__":
    sys.exit(main())
