"""The ablations recipe (training/recipes/ablations.sh) runs end to end in a dry run of a few steps:
every arm is trained with the one setting its table varies, and each table's report scores its arms
with the main table's protocol. A broken recipe would otherwise only show after 100 minutes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from model import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TABLES = {
    4: ["decoupled", "coupled"],
    5: ["with CRM", "without CRM"],
    6: ["hybrid", "global only", "local only"],
    7: ["scene prior", "random compositing"],
}
INPUTS = ["click", "scribble", "box", "text", "mix"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two ISCN steps per arm, two MRN steps, six training images, one test image (about 2 min)."""
    tmp = tmp_path_factory.mktemp("ablations")
    work, out = tmp / "work", tmp / "out"
    env = {**os.environ, "STEPS": "2", "MRN_STEPS": "2", "COUNT": "6", "N384": "1",
           "WORK": str(work), "OUT": str(out)}
    done = subprocess.run(["bash", "training/recipes/ablations.sh"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return work, out


@pytest.mark.slow
def test_each_table_scores_its_arms_with_the_main_protocol(dry_run: tuple[Path, Path]) -> None:
    work, out = dry_run
    for table, methods in TABLES.items():
        report = json.loads((out / f"table{table}" / "report.json").read_text())
        protocol = report["protocol"]
        assert protocol["methods"] == methods
        assert protocol["inputs"] == INPUTS and protocol["rounds"] == 5 and protocol["images"] == 1
        assert protocol["data"] == str(work / "test384")
        assert protocol["inputs_kept"] and protocol["focus"] and protocol["edges_snapped"]
        scored = {(r["method"], r["mode"]) for r in report["records"]}
        assert scored == {(m, i) for m in methods for i in INPUTS}, f"table {table}"
        assert (out / f"table{table}" / "table.md").is_file()
        assert (work / f"table{table}.log").is_file()
    assert not list(out.glob("*.log")), "the evaluations' logs stay in WORK, out of the committed reports"
    assert not (out / "results.md").exists(), "results.md is rewritten only for OUT=docs/results"


@pytest.mark.slow
def test_each_arm_differs_from_the_reference_in_its_own_setting_only(dry_run: tuple[Path, Path]) -> None:
    work, _ = dry_run

    def trained(arm: str, stage: str) -> dict:
        _, extra = load_checkpoint(work / arm / f"{stage}_last.pt", text_encoder=False)
        return extra["config"]

    ref = trained("ref", "iscn")
    varied = {"crm", "coupled", "data", "out"}
    for arm, setting in [("nocrm", {"crm": False}), ("coupled", {"coupled": True}),
                         ("random", {"data": str(work / "random")})]:
        config = trained(arm, "iscn")
        assert {k: config[k] for k in setting} == setting, arm
        assert {k: v for k, v in config.items() if k not in varied} == \
               {k: v for k, v in ref.items() if k not in varied}, arm
    assert ref["data"] == str(work / "scene") and ref["crm"] and not ref["coupled"] and ref["focus_prob"] == 0.5
    for branches in ("hybrid", "global", "local"):
        config = trained(branches, "mrn")
        assert config["mrn_branches"] == branches and config["iscn"] == str(work / "ref" / "iscn_last.pt")
