"""Parameters, GFLOPs and PyTorch latency of each DFIMat part, for both sizes, on CPU or CUDA.
Prints (and with --json writes the figures); never asserts.

    python bench/model_size.py [--size 1024] [--repeats 3] [--threads N] [--device cpu|cuda] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model import Prompts, build_dfimat, count_parameters  # noqa: E402


def gflops(fn: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / 1e9


def latency_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time after a warm-up; on CUDA the queue is drained before each clock read."""
    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()  # warm-up
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--json", type=Path, help="also write the figures and the machine to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    s = args.size
    image = torch.rand(1, 3, s, s, device=device)
    prompts = Prompts(
        clicks=[(s * 0.5, s * 0.4, True), (s * 0.1, s * 0.1, False)],
        scribbles=[([(s * 0.45, s * 0.3), (s * 0.55, s * 0.7)], True)],
        boxes=[(s * 0.3, s * 0.1, s * 0.7, s * 0.95)],
        texts=["the woman in the middle"],
    )
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} threads"
    print(f"DFIMat parts at {s}x{s}, PyTorch {torch.__version__} fp32, {where}, median of {args.repeats}")
    report: dict = {"device": where, "torch": torch.__version__, "size": s, "repeats": args.repeats,
                    "platform": f"{platform.system()} {platform.release()}", "variants": {}}
    print(f"{'variant':8} {'part':14} {'params (M)':>10} {'GFLOPs':>8} {'latency (ms)':>12}")
    for variant in ("base", "small"):
        torch.manual_seed(0)
        net = build_dfimat(variant).eval().to(device)
        trained_params = count_parameters(net)
        enc_params = count_parameters(net.iscn.encoder)
        dec_params = count_parameters(net.iscn) - enc_params
        mrn_params = count_parameters(net.mrn)
        net.requires_grad_(False)  # the FLOP counter's module hooks want no autograd leaves
        feats = net.iscn.encode_image(image)
        out = net.iscn.decode(feats, prompts)
        prev = out.low_res_logits.sigmoid()
        coarse = out.mask_logits.sigmoid()
        rows = [
            ("encode_image", enc_params, lambda net=net: net.iscn.encode_image(image)),
            ("decode", dec_params, lambda net=net, f=feats, p=prev: net.iscn.decode(f, prompts, prev_mask=p)),
            ("mrn", mrn_params, lambda net=net, c=coarse: net.mrn(image, c)),
        ]
        parts = report["variants"][variant] = {}
        for name, params, fn in rows:
            ms = latency_ms(fn, args.repeats, device)
            parts[name] = {"params_m": params / 1e6, "gflops": gflops(fn), "ms": ms}
            print(f"{variant:8} {name:14} {params / 1e6:10.2f} {parts[name]['gflops']:8.2f} {ms:12.1f}")
        print(f"{variant:8} {'total':14} {trained_params / 1e6:10.2f}"
              f"   (frozen MiniLM text encoder, {sum(p.numel() for p in net.iscn.text_encoder.parameters()) / 1e6:.1f} M, not counted;"
              f" its cost is in decode)")
        print(f"{variant:8} {'ISCN input':14} {net.config.image_size}x{net.config.image_size}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
