"""ONNX export of a trained DFIMat checkpoint into a models folder the plug-in's engine loads.

    python -m export --checkpoint CKPT [--variant base|small] --out DIR [--text-int8]

See docs/export.md for the graphs, the manifest and the parity bounds.
"""

from .exporter import ExportError, ExportOptions, export_models

__all__ = ["ExportError", "ExportOptions", "export_models"]
