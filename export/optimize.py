"""Post-export passes: simplify (onnxslim), check (onnx.checker), fp16 and int8 copies."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import onnxslim


def simplify(src: Path, dst: Path) -> None:
    """Fold constants and drop dead nodes with onnxslim, then run the ONNX checker on the result."""
    model = onnxslim.slim(onnx.load(str(src)))
    onnx.save(model, str(dst))
    onnx.checker.check_model(str(dst), full_check=True)


def to_fp16(src: Path, dst: Path) -> None:
    """Half-precision weights and activations, fp32 inputs and outputs (callers feed the same arrays)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    # The converter appends its input casts at the end of the node list; onnxslim re-sorts the
    # graph topologically (the checker requires that) and folds the casts it can.
    model = onnxslim.slim(model)
    onnx.save(model, str(dst))
    onnx.checker.check_model(str(dst))


def to_int8(src: Path, dst: Path) -> None:
    """Dynamic int8 quantisation of the weights, per output channel with reduced range
    (activations stay float): MiniLM shrinks about 4x (90 -> 22 MB), which matters for shipping.
    Per-tensor scales cost too much accuracy (cosine ~0.96 with fp32); per-channel keeps > 0.99."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger("onnxruntime.quantization").setLevel(logging.ERROR)
    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
    onnx.checker.check_model(str(dst))


def io_description(path: Path) -> tuple[list[dict], list[dict]]:
    """Names, element types and shapes (ints, or the names of dynamic axes) of a graph's inputs and outputs."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(values) -> list[dict]:
        out = []
        for v in values:
            t = v.type.tensor_type
            shape = [d.dim_param if d.dim_param else (d.dim_value if d.HasField("dim_value") else "?")
                     for d in t.shape.dim]
            out.append({"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
                        "shape": shape})
        return out

    return describe(graph.input), describe(graph.output)
