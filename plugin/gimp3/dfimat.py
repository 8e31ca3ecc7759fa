#!/usr/bin/env python3
"""GIMP 3 entry point of DFIMat (installed as plug-ins/dfimat/dfimat.py).

It only finds its own code and runtime packages, then hands over to ``plugin.gimp3.procedure``.
Installed, the ``plugin`` package sits beside this file and ``runtime.json`` (written by
install.py) lists the site-packages folders holding ONNX Runtime and friends, because GIMP's
Python does not have them. Run from a checkout, the repository root is two folders up.
"""

import json
import os
import site
import sys

HERE = os.path.dirname(os.path.realpath(__file__))


def _setup_paths():
    """Put the plug-in's package and its runtime site-packages first on sys.path."""
    for root in (HERE, os.path.dirname(os.path.dirname(HERE))):
        if os.path.isfile(os.path.join(root, "plugin", "gimp_inputs.py")):
            if root not in sys.path:
                sys.path.insert(0, root)
            break
    config_path = os.path.join(HERE, "runtime.json")
    config = {}
    if os.path.isfile(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
    for d in reversed(config.get("site_dirs", [])):
        if os.path.isdir(d):
            site.addsitedir(d)  # also runs the folder's .pth files
            sys.path.remove(d)
            sys.path.insert(1, d)  # before the system's packages, after the plug-in's code
    if config.get("models") and not os.environ.get("DFIMAT_MODELS"):
        os.environ["DFIMAT_DEFAULT_MODELS"] = config["models"]
    elif os.path.isdir(os.path.join(HERE, "models")):
        os.environ.setdefault("DFIMAT_DEFAULT_MODELS", os.path.join(HERE, "models"))


_setup_paths()

from plugin.gimp3.procedure import main  # noqa: E402

if __name__ == "__main__":
    main()
