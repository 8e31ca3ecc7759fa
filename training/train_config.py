"""Training configuration: defaults, then an optional YAML file, then the command line.

One dataclass holds every knob so a checkpoint can record exactly how it was trained (the
config is saved in every checkpoint's ``extra``) and a run can be resumed with the same settings.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from model.mrn import BRANCHES as MRN_BRANCHES

from .simulate import MODES

STAGES = ("iscn", "mrn")
AMP_CHOICES = ("auto", "bf16", "fp16", "off")


@dataclass
class TrainConfig:
    """Everything a training run needs; see docs/training.md for what each field does."""

    stage: str = "iscn"  # iscn | mrn (with coupled=True, "iscn" trains ISCN + MRN end to end)
    out: str = ""  # run folder: checkpoints, logs
    data: str | None = None  # dataset folder (training.data.MattingDataset)
    synth: str | None = None  # "scene" | "random": generate training data in memory instead
    synth_count: int = 64
    synth_size: int = 256
    iscn: str | None = None  # mrn stage: the trained ISCN checkpoint (frozen)
    init: str | None = None  # start from this checkpoint's weights (fresh optimizer and schedule)
    variant: str = "small"
    size: int = 384  # side of the square training crops
    batch_size: int = 4
    epochs: int | None = None
    steps: int | None = None  # total optimizer steps; wins over epochs when both are given
    lr: float = 5e-4
    weight_decay: float = 0.0
    min_lr_ratio: float = 0.0  # cosine schedule floor, as a fraction of lr
    inputs: list[str] = field(default_factory=lambda: ["mix"])  # simulated input modes, one drawn per image
    max_rounds: int = 3  # ISCN: train on round r, r drawn in 1..max_rounds
    round1_prob: float | None = None  # share of batches on round 1 (None: uniform in 1..max_rounds)
    negative_prob: float = 0.1  # ISCN: share of images whose prompts point at no person
    focus_prob: float = 0.0  # share of crops framed around the target as the engine zooms in (train_data.focus_crop)
    aux_weight: float = 1.0  # deep supervision weight (ISCN decoder stages, MRN PRM stages)
    perturb_prob: float = 0.5  # MRN: share of coarse masks made by perturbing the GT
    crm: bool = True  # False: prev_mask never given (Table 5 ablation)
    coupled: bool = False  # True: ISCN and MRN trained together in one stage (Table 4 ablation)
    mrn_branches: str = "hybrid"  # MRN stage: "global" or "local" alone for the Table 6 ablation
    seed: int = 0
    workers: int = 0  # data loader processes (crops and round-1 inputs)
    sim_workers: int = 0  # processes for the simulated users' later-round corrections (0: in the training process)
    amp: str = "auto"  # mixed precision on GPU: auto (bf16 where supported, else fp16) | bf16 | fp16 | off
    device: str = "auto"
    log_every: int = 10
    save_every: int = 500  # steps between checkpoints (one is always written at the end)
    resume: bool = False
    stop_at: int | None = None  # stop (with a checkpoint) after this step, e.g. for time-limited jobs
    max_minutes: float | None = None  # time box: stop (with a checkpoint) after this long; lr anneals by time too

    def validate(self) -> None:
        """Fail early, with the field's name, on a config that cannot train."""
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if not self.out:
            raise ValueError("out (the run folder) is required")
        if (self.data is None) == (self.synth is None):
            raise ValueError("give exactly one training data source: data (a folder) or synth (scene|random)")
        if self.synth is not None and self.synth not in ("scene", "random"):
            raise ValueError(f"synth must be 'scene' or 'random', got {self.synth!r}")
        if self.stage == "mrn" and not self.iscn:
            raise ValueError("the mrn stage needs iscn: the trained ISCN checkpoint it refines")
        if self.init is not None and self.resume:
            raise ValueError("give init (fresh optimizer from a checkpoint's weights) or resume, not both")
        if self.stage == "mrn" and self.coupled:
            raise ValueError("coupled training is one stage: run stage 'iscn' with coupled=True")
        bad = [m for m in self.inputs if m not in MODES]
        if not self.inputs or bad:
            raise ValueError(f"inputs must be a non-empty subset of {list(MODES)}, got {self.inputs}")
        if self.mrn_branches not in MRN_BRANCHES:
            raise ValueError(f"mrn_branches must be one of {MRN_BRANCHES}, got {self.mrn_branches!r}")
        if self.mrn_branches != "hybrid" and self.stage != "mrn":
            raise ValueError("mrn_branches is an MRN-stage setting (the ISCN stage trains no MRN)")
        if self.amp not in AMP_CHOICES:
            raise ValueError(f"amp must be one of {AMP_CHOICES}, got {self.amp!r}")
        for name in ("workers", "sim_workers"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be 0 or more, got {getattr(self, name)}")
        for name in ("size", "batch_size", "max_rounds", "synth_count", "log_every", "save_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.size % 8:
            raise ValueError(f"size must be a multiple of 8, got {self.size}")
        if self.steps is None and self.epochs is None:
            raise ValueError("give steps or epochs")
        for name in ("negative_prob", "perturb_prob", "focus_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.round1_prob is not None and not 0.0 <= self.round1_prob <= 1.0:
            raise ValueError(f"round1_prob must be in [0, 1], got {self.round1_prob}")
        if self.round1_prob is not None and self.round1_prob < 1.0 and self.max_rounds == 1:
            raise ValueError("round1_prob below 1 needs max_rounds of 2 or more (only round 1 exists)")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive, got {self.max_minutes}")

    @property
    def trains_mrn(self) -> bool:
        """The MRN stage, or coupled ISCN training: the stages whose optimizer moves MRN."""
        return self.stage == "mrn" or self.coupled

    @property
    def uses_text(self) -> bool:
        return any(m in ("text", "mix") for m in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_yaml(path: Path | str) -> dict[str, Any]:
    """A YAML mapping of TrainConfig fields; unknown keys are an error (a typo must not be ignored)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of settings")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"config file {path}: unknown settings {unknown}; known: {sorted(known)}")
    return data


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.train",
        description="Train DFIMat decoupled: ISCN alone, then MRN on the frozen ISCN (paper 5.1).",
    )
    p.add_argument("stage", choices=STAGES, help="iscn: the semantic capture network; mrn: the matting network")
    p.add_argument("--out", help="run folder (checkpoints and logs)")
    p.add_argument("--data", help="training dataset folder")
    p.add_argument("--synth", choices=("scene", "random"), help="generate training data in memory instead of --data")
    p.add_argument("--synth-count", type=int)
    p.add_argument("--synth-size", type=int)
    p.add_argument("--iscn", help="mrn stage: trained ISCN checkpoint (e.g. RUN/iscn_last.pt)")
    p.add_argument("--init", help="start from this checkpoint's weights with a fresh optimizer and schedule "
                                  "(iscn stage: its ISCN; mrn stage: its MRN), e.g. to go on training elsewhere")
    p.add_argument("--config", help="YAML file of settings (command-line flags win over it)")
    p.add_argument("--variant", choices=("small", "base"))
    p.add_argument("--size", type=int, help="training crop side in pixels")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--epochs", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--inputs", nargs="+", choices=MODES, help="simulated input modes (one drawn per image)")
    p.add_argument("--max-rounds", type=int)
    p.add_argument("--round1-prob", type=float,
                   help="share of batches trained on round 1, the others on 2..max-rounds (default: uniform); "
                        "round 1 is the only one where a box or a description is trained alone")
    p.add_argument("--negative-prob", type=float)
    p.add_argument("--focus-prob", type=float,
                   help="share of crops framed around the target person, as the engine zooms in from round 2 "
                        "on (plugin.focus); the rest show the whole scene")
    p.add_argument("--aux-weight", type=float)
    p.add_argument("--perturb-prob", type=float)
    p.add_argument("--no-crm", dest="crm", action="store_const", const=False, help="never give the previous mask")
    p.add_argument("--mrn-branches", choices=MRN_BRANCHES, help="MRN stage: hybrid (default) or one branch alone (ablation)")
    p.add_argument("--coupled", action="store_const", const=True, help="train ISCN and MRN end to end (ablation)")
    p.add_argument("--seed", type=int)
    p.add_argument("--workers", type=int, help="data loader processes (crops and round-1 inputs)")
    p.add_argument("--sim-workers", type=int,
                   help="processes for the simulated users' corrections in rounds 2+ (0: in the training "
                        "process); on a GPU this CPU work is what the GPU waits for")
    p.add_argument("--amp", choices=AMP_CHOICES)
    p.add_argument("--device")
    p.add_argument("--log-every", type=int)
    p.add_argument("--save-every", type=int)
    p.add_argument("--resume", action="store_const", const=True, help="continue from OUT/<stage>_last.pt")
    p.add_argument("--stop-at", type=int, help="stop with a checkpoint after this step (resume later)")
    p.add_argument("--max-minutes", type=float,
                   help="time box: stop with a checkpoint after this many minutes of training; the learning "
                        "rate follows whichever of steps or time is further along, so a boxed run still anneals")
    return p


def config_from_args(argv: list[str] | None = None) -> TrainConfig:
    """Defaults, overridden by --config YAML, overridden by flags given on the command line."""
    args = build_parser().parse_args(argv)
    values: dict[str, Any] = {}
    if args.config:
        values.update(load_yaml(args.config))
    for f in fields(TrainConfig):
        v = getattr(args, f.name, None)
        if v is not None:
            values[f.name] = v
    values["stage"] = args.stage
    cfg = TrainConfig(**values)
    if isinstance(cfg.inputs, str):
        cfg.inputs = [cfg.inputs]
    cfg.validate()
    return cfg
