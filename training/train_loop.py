"""The training loop shared by both stages: Adam + cosine schedule, mixed precision on GPU,
DDP under torchrun, tqdm progress, JSON-lines log, checkpoints and resume.

Checkpoints: ``OUT/<stage>_last.pt`` is a ``model.save_checkpoint`` file (the whole DFIMat, so the
MRN stage's checkpoint is the complete model for evaluation and export) whose ``extra`` holds
the step, epoch, config, data and the last logged losses; ``OUT/<stage>_last.state.pt`` holds
the optimizer, schedule and grad-scaler state needed to resume exactly.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from model import DFIMat, build_dfimat, load_checkpoint, save_checkpoint
from model.modeling.text_encoder import text_encoder_source

from .sim_pool import CorrectionPool
from .train_config import TrainConfig
from .train_data import (
    Batch,
    EpochSampler,
    InstanceDataset,
    SampleLike,
    batch_to,
    collate,
    describe_data,
    load_samples,
)
from .train_steps import ISCNStep, MRNStep, autocast_context, trainable_parameters


@dataclass
class DistInfo:
    world_size: int = 1
    rank: int = 0
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return DistInfo(world, rank, local)


def pick_device(name: str, info: DistInfo) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for but CUDA is not available")
    if dev.type == "cuda" and info.world_size > 1:
        dev = torch.device(f"cuda:{info.local_rank}")
    return dev


def cosine_factor(step: int, total: int, floor: float) -> float:
    """Learning-rate multiplier: cosine from 1 at step 0 to ``floor`` at the last step."""
    return cosine_at(step / max(1, total), floor)


def cosine_at(progress: float, floor: float) -> float:
    """The cosine schedule at a fraction of the run (clipped to [0, 1])."""
    t = min(1.0, max(0.0, progress))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * t))


def run_progress(step: int, total: int, elapsed_s: float, max_minutes: float | None) -> float:
    """How far along a run is: by steps, or by time when a time box is set and time is ahead.
    A GPU box of a few minutes cannot know its step rate in advance; following the clock lets
    the learning rate still reach its floor when the box closes."""
    by_steps = step / max(1, total)
    if max_minutes is None:
        return by_steps
    return max(by_steps, elapsed_s / (60.0 * max_minutes))


def last_paths(cfg: TrainConfig) -> tuple[Path, Path]:
    out = Path(cfg.out)
    return out / f"{cfg.stage}_last.pt", out / f"{cfg.stage}_last.state.pt"


def build_net(cfg: TrainConfig) -> tuple[DFIMat, dict[str, Any], dict[str, Any] | None]:
    """A fresh DFIMat (iscn stage), or the trained ISCN with a fresh MRN (mrn stage); plus the
    ISCN checkpoint's record (its step, config and data) for the MRN stage's checkpoints, so an
    exported model's manifest tells how both stages were trained."""
    init, lineage = _load_init(cfg)
    if cfg.stage == "mrn":
        net, extra = load_checkpoint(cfg.iscn, text_encoder=cfg.uses_text)
        if net.config.variant != cfg.variant:
            raise ValueError(f"ISCN checkpoint {cfg.iscn} is variant {net.config.variant!r}, config says {cfg.variant!r}")
        fresh = build_dfimat(cfg.variant, text_encoder=False, mrn_branches=cfg.mrn_branches)
        net.mrn = init.mrn if init is not None else fresh.mrn  # else MRN starts fresh whatever the file held
        net.config = fresh.config
        iscn_record = {k: extra[k] for k in RECORD_KEYS if k in extra}
        return net, iscn_record, lineage
    net = build_dfimat(cfg.variant, text_encoder=cfg.uses_text)
    if init is not None:
        net.iscn.load_state_dict(init.iscn.state_dict(), strict=False)  # MiniLM is not in checkpoints
        if cfg.coupled:
            net.mrn.load_state_dict(init.mrn.state_dict())
    return net, {}, lineage


#: What a checkpoint records of the run that made the weights it starts from.
RECORD_KEYS = ("step", "epoch", "config", "data", "crm", "coupled", "text_encoder", "init_from", "iscn_training")


def _load_init(cfg: TrainConfig) -> tuple[DFIMat | None, dict[str, Any] | None]:
    """The ``init`` checkpoint's model (checked to be this run's variant and MRN kind) and its
    lineage (the checkpoint's own record, so a model trained in several places still tells how
    many steps each stage had in all); (None, None) without ``init``."""
    if cfg.init is None:
        return None, None
    net, extra = load_checkpoint(cfg.init, text_encoder=False)
    if net.config.variant != cfg.variant:
        raise ValueError(f"init checkpoint {cfg.init} is variant {net.config.variant!r}, config says {cfg.variant!r}")
    if cfg.stage == "mrn" and net.config.mrn_branches != cfg.mrn_branches:
        raise ValueError(f"init checkpoint {cfg.init} has MRN branches {net.config.mrn_branches!r}, "
                         f"this run trains {cfg.mrn_branches!r}")
    lineage = {"path": str(cfg.init), "stage": extra.get("stage"), **{k: extra[k] for k in RECORD_KEYS if k in extra}}
    return net, lineage


def _to_float(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: float(v.detach()) for k, v in parts.items()}


def train(cfg: TrainConfig, samples: Sequence[SampleLike] | None = None) -> dict[str, Any]:
    """Run one stage to the end; returns a summary (steps, every step's loss, checkpoint path).

    ``samples`` replaces the config's data source (for callers that already hold samples)."""
    cfg.validate()
    info = init_distributed(cfg.device)
    device = pick_device(cfg.device, info)
    torch.manual_seed(cfg.seed + info.rank)
    if info.is_main:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    ckpt_path, state_path = last_paths(cfg)
    if cfg.resume and (not ckpt_path.is_file() or not state_path.is_file()):
        raise FileNotFoundError(f"--resume: no checkpoint to resume in {cfg.out} ({ckpt_path.name} and {state_path.name})")

    dataset = make_dataset(cfg, samples, info)
    loader, sampler, generator = make_loader(cfg, dataset, info, device)
    per_epoch = max(1, len(loader))
    total = cfg.steps if cfg.steps is not None else cfg.epochs * per_epoch
    net, iscn_record, lineage = build_net(cfg)
    if not cfg.trains_mrn:
        net.mrn.requires_grad_(False)  # not trained here; keeps DDP from waiting on its gradients
    pool = CorrectionPool(cfg.sim_workers)  # spawns its processes at the first round-2 batch
    step_mod = (ISCNStep if cfg.stage == "iscn" else MRNStep)(net, cfg, pool)
    try:
        start_step = resume_weights(net, ckpt_path) if cfg.resume else 0
        step_mod.to(device)
        if cfg.trains_mrn and cfg.init is not None and not cfg.resume:
            moved = step_mod.calibrate_batchnorm(calibration_batches(dataset, cfg.batch_size, device), cfg.seed)
            if info.is_main:
                print(f"MRN BatchNorm statistics re-fitted to this stage's inputs ({moved} layers, "
                      f"{CALIBRATION_BATCHES} batches), outputs unchanged", flush=True)
        optim = Optimization.create(step_mod, cfg, total, device)
        if cfg.resume:
            optim.load(state_path)
        run = Run(cfg, info, device, net, wrap_parallel(step_mod, cfg, info, device), optim, total,
                  iscn_record, lineage)
        run.loop(loader, sampler, generator, per_epoch, start_step)
    finally:
        pool.close()
    if info.world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return {
        "rank": info.rank,
        "stage": cfg.stage,
        "steps": run.step,
        "start_step": start_step,
        "seconds": run.seconds,
        "losses": [h["total"] for h in run.history],
        "last": run.last_logged,
        "checkpoint": str(ckpt_path),
    }


#: Batches an MRN continuation re-fits its BatchNorm statistics on before its first step.
CALIBRATION_BATCHES = 4


def calibration_batches(dataset: InstanceDataset, batch_size: int, device: torch.device) -> list[Batch]:
    """``CALIBRATION_BATCHES`` batches of items spread evenly over the dataset (epoch 0)."""
    count = min(len(dataset), CALIBRATION_BATCHES * batch_size)
    picks = np.linspace(0, len(dataset) - 1, count).round().astype(int).tolist()
    return [batch_to(collate([dataset[(0, i)] for i in picks[k:k + batch_size]]), device)
            for k in range(0, count, batch_size)]


def make_dataset(cfg: TrainConfig, samples: Sequence[SampleLike] | None, info: DistInfo) -> InstanceDataset:
    if samples is None:
        samples = load_samples(cfg) if info.is_main else None
    if info.world_size > 1:
        dist.barrier()  # rank 0 may have generated synthetic data; the others load it now
        samples = load_samples(cfg) if samples is None else samples
    assert samples is not None
    # Negative items teach ISCN's person classifier; MRN refines people only.
    return InstanceDataset(samples, cfg.size, cfg.seed, cfg.inputs, cfg.negative_prob if cfg.stage == "iscn" else 0.0,
                           cfg.focus_prob)


def make_loader(cfg: TrainConfig, dataset: InstanceDataset, info: DistInfo,
                device: torch.device) -> tuple[DataLoader, EpochSampler, torch.Generator]:
    """The loader, its (epoch, index) sampler and the generator that shuffles each epoch (reseeded
    per epoch, so a batch is a function of seed, epoch and position)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    indices = (DistributedSampler(dataset, info.world_size, info.rank, shuffle=True, seed=cfg.seed)
               if info.world_size > 1 else RandomSampler(dataset, generator=generator))
    sampler = EpochSampler(indices)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
        drop_last=len(dataset) // info.world_size >= cfg.batch_size, pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,  # the epoch comes with each index (EpochSampler)
    )
    return loader, sampler, generator


def resume_weights(net: DFIMat, ckpt_path: Path) -> int:
    """Load the last checkpoint's weights into ``net``; the step it was written at."""
    loaded, extra = load_checkpoint(ckpt_path, text_encoder=False)
    missing = net.load_state_dict(loaded.state_dict(), strict=False)
    if missing.unexpected_keys:
        raise ValueError(f"{ckpt_path} does not fit this run: {missing.unexpected_keys[:5]}")
    return int(extra.get("step", 0))


def wrap_parallel(step_mod: torch.nn.Module, cfg: TrainConfig, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """The step module, under DistributedDataParallel when torchrun started several ranks."""
    if info.world_size == 1:
        return step_mod
    return torch.nn.parallel.DistributedDataParallel(
        step_mod, device_ids=[device.index] if device.type == "cuda" else None,
        find_unused_parameters=cfg.stage == "iscn",  # e.g. text layers in a batch without text
    )


@dataclass
class Optimization:
    """Adam over the stage's trainable parameters, the cosine schedule and the fp16 grad scaler:
    what a step updates and what a resume restores."""

    cfg: TrainConfig
    params: list[torch.nn.Parameter]
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @classmethod
    def create(cls, step_mod: torch.nn.Module, cfg: TrainConfig, total: int, device: torch.device) -> Optimization:
        params = list(trainable_parameters(step_mod, cfg.stage, cfg.coupled))
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_factor(s, total, cfg.min_lr_ratio))
        use_fp16 = device.type == "cuda" and (cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()))
        return cls(cfg, params, opt, sched, torch.amp.GradScaler("cuda", enabled=use_fp16))

    def load(self, state_path: Path) -> None:
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        self.opt.load_state_dict(st["optimizer"])
        self.sched.load_state_dict(st["scheduler"])
        self.scaler.load_state_dict(st["scaler"])

    def state(self, step: int) -> dict[str, Any]:
        return {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict(),
                "scaler": self.scaler.state_dict(), "step": step}

    def update(self, loss: torch.Tensor) -> None:
        """Backward, clip to norm 1, step, advance the schedule."""
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()

    def follow_clock(self, step: int, total: int, elapsed_s: float) -> None:
        """Under a time box the learning rate follows whichever of steps or time is further along."""
        if self.cfg.max_minutes is not None:
            factor = cosine_at(run_progress(step, total, elapsed_s, self.cfg.max_minutes), self.cfg.min_lr_ratio)
            for group in self.opt.param_groups:
                group["lr"] = self.cfg.lr * factor

    @property
    def lr(self) -> float:
        return self.opt.param_groups[0]["lr"]


@dataclass
class Run:
    """One stage's steps from ``start_step`` to the end (or the stop step, or the time box), with
    the log and the checkpoints; holds what the summary reports."""

    cfg: TrainConfig
    info: DistInfo
    device: torch.device
    net: DFIMat
    model: torch.nn.Module
    optim: Optimization
    total: int
    iscn_record: dict[str, Any]
    lineage: dict[str, Any] | None
    step: int = 0
    seconds: float = 0.0
    history: list[dict[str, float]] = field(default_factory=list)
    last_logged: dict[str, float] = field(default_factory=dict)

    def loop(self, loader: DataLoader, sampler: EpochSampler, generator: torch.Generator,
             per_epoch: int, start_step: int) -> None:
        cfg = self.cfg
        self.model.train()
        bar = tqdm(total=self.total, initial=start_step, desc=f"train {cfg.stage}", disable=not self.info.is_main,
                   dynamic_ncols=True)
        self.step = start_step
        # Batches are a function of (seed, epoch, position), so a resumed run skips the batches of
        # the current epoch it already trained on (unloaded) and then sees exactly what an unbroken
        # run would.
        epoch, skip = divmod(start_step, per_epoch)
        t0 = time.time()
        try:
            while self.step < self.total:
                sampler.set_epoch(epoch, skip * cfg.batch_size)
                generator.manual_seed(cfg.seed + epoch)
                for batch in loader:
                    if self.step >= self.total or self.train_step(batch, epoch, t0, bar):
                        return
                epoch, skip = epoch + 1, 0
        finally:
            self.seconds = time.time() - t0
            bar.close()

    def train_step(self, batch: Any, epoch: int, t0: float, bar: tqdm) -> bool:
        """One optimizer step, its log line and checkpoint; whether the run stops here."""
        cfg, info = self.cfg, self.info
        rng = np.random.default_rng([cfg.seed, self.step, info.rank])
        batch = batch_to(batch, self.device)
        with autocast_context(self.device, cfg.amp):
            parts = self.model(batch, rng)
        self.optim.update(parts["total"])
        self.step += 1
        step, elapsed = self.step, time.time() - t0
        time_up = _time_up(elapsed, cfg, info)  # every rank asks, once per step (DDP broadcast)
        self.optim.follow_clock(step, self.total, elapsed)
        values = _to_float(parts)
        values.update(step=step, epoch=epoch, lr=self.optim.lr)
        self.history.append(values)
        bar.update(1)
        bar.set_postfix(loss=f"{values['total']:.4f}")
        stopping = (cfg.stop_at is not None and step >= cfg.stop_at) or time_up
        if info.is_main and (step % cfg.log_every == 0 or step == self.total or stopping):
            self.last_logged = values
            with (Path(cfg.out) / f"{cfg.stage}_log.jsonl").open("a") as f:
                f.write(json.dumps(values) + "\n")
        if info.is_main and (step % cfg.save_every == 0 or step == self.total or stopping):
            _save(self.net, cfg, step, epoch, values, self.optim, self.iscn_record, self.lineage)
        return stopping


def _time_up(elapsed_s: float, cfg: TrainConfig, info: DistInfo) -> bool:
    """Whether the time box is spent; under DDP rank 0's clock decides for all, so no rank waits
    forever on a step the others skipped."""
    if cfg.max_minutes is None:
        return False
    up = elapsed_s >= 60.0 * cfg.max_minutes
    if info.world_size == 1:
        return up
    flag = torch.tensor([1.0 if up else 0.0], device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.broadcast(flag, 0)
    return bool(flag.item())


def _save(net: DFIMat, cfg: TrainConfig, step: int, epoch: int, metrics: dict[str, float], optim: Optimization,
          iscn_record: dict[str, Any], lineage: dict[str, Any] | None) -> None:
    ckpt_path, state_path = last_paths(cfg)
    extra = {
        "stage": cfg.stage,
        "coupled": cfg.coupled,
        "crm": cfg.crm,
        "step": step,
        "epoch": epoch,
        "config": cfg.to_dict(),
        "data": describe_data(cfg),
        "metrics": metrics,
        "iscn_checkpoint": cfg.iscn,
        "text_encoder": text_encoder_source(net.iscn.text_encoder),
    }
    if lineage is not None:
        extra["init_from"] = lineage
    if iscn_record:
        extra["iscn_training"] = iscn_record
    tmp = state_path.with_suffix(".tmp")
    torch.save(optim.state(step), tmp)
    tmp.replace(state_path)
    save_checkpoint(net, ckpt_path, extra=extra)
