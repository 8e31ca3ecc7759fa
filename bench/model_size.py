"""Parameters, GFLOPs and CPU latency of each DFIMat part, for both sizes. Prints; never asserts.

    python bench/model_size.py [--size 1024] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
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


def latency_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    return statistics.median(times)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    s = args.size
    image = torch.rand(1, 3, s, s)
    prompts = Prompts(
        clicks=[(s * 0.5, s * 0.4, True), (s * 0.1, s * 0.1, False)],
        scribbles=[([(s * 0.45, s * 0.3), (s * 0.55, s * 0.7)], True)],
        boxes=[(s * 0.3, s * 0.1, s * 0.7, s * 0.95)],
        texts=["the woman in the middle"],
    )
    print(f"DFIMat parts at {s}x{s}, CPU, {args.threads} threads, median of {args.repeats}")
    print(f"{'variant':8} {'part':14} {'params (M)':>10} {'GFLOPs':>8} {'latency (ms)':>12}")
    for variant in ("base", "small"):
        torch.manual_seed(0)
        net = build_dfimat(variant).eval()
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
        for name, params, fn in rows:
            print(f"{variant:8} {name:14} {params / 1e6:10.2f} {gflops(fn):8.2f} {latency_ms(fn, args.repeats):12.1f}")
        print(f"{variant:8} {'total':14} {trained_params / 1e6:10.2f}"
              f"   (frozen MiniLM text encoder, {sum(p.numel() for p in net.iscn.text_encoder.parameters()) / 1e6:.1f} M, not counted;"
              f" its cost is in decode)")
        print(f"{variant:8} {'ISCN input':14} {net.config.image_size}x{net.config.image_size}")


if __name__ == "__main__":
    main()
