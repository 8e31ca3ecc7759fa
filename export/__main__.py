"""Command line of the exporter: ``python -m export --checkpoint CKPT --out DIR``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export", description="Export a DFIMat checkpoint to ONNX.")
    parser.add_argument("--checkpoint", type=Path, help="trained checkpoint (model.save_checkpoint)")
    parser.add_argument("--variant", choices=("base", "small"), help="expected variant (checked against the checkpoint)")
    parser.add_argument("--out", type=Path, required=True, help="models folder to write")
    parser.add_argument("--no-fp16", action="store_true", help="skip the fp16 copies for GPUs")
    parser.add_argument("--text-int8", action="store_true", help="ship MiniLM as dynamic int8 (about 4x smaller)")
    parser.add_argument("--no-check", action="store_true", help="skip the parity checks (not for shipping)")
    args = parser.parse_args(argv)
    if args.checkpoint is None:
        print("error: --checkpoint is required: the exporter never ships untrained random weights", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from .exporter import ExportError, ExportOptions, export_models

    try:
        manifest = export_models(ExportOptions(
            checkpoint=args.checkpoint, out=args.out, variant=args.variant, fp16=not args.no_fp16,
            text_int8=args.text_int8, check=not args.no_check,
        ))
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({manifest['model']} {manifest['version']}, {len(manifest['files'])} files)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
