"""The GIMP 3 procedure ``plug-in-dfimat-matte``: declared once, run as read -> job -> write.

``run`` only converts GIMP objects to plain data (gimp_io), runs the GIMP-free job (worker)
and writes the outcome back; errors reach the user as the procedure's error message.
"""

from __future__ import annotations

import os
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
from gi.repository import Gimp, GimpUi, GLib, GObject  # noqa: E402

from ..gimp_inputs import DEVICES, MODELS, OUTPUTS, UNNAMED, InputError  # noqa: E402
from ..worker import Job, JobError, Options, run_job  # noqa: E402
from . import gimp_io  # noqa: E402

PROC_NAME = "plug-in-dfimat-matte"
MENU_PATHS = ("<Image>/Filters/Matting", "<Image>/Select")
LABEL = "Interactive Matte (DFIMat)..."

_RW = GObject.ParamFlags.READWRITE

#: (argument, label, help, {nick: label}, default) for the choice arguments, in dialog order.
CHOICES = (
    ("output", "Output", "Where the matte goes", {
        "mask": "Layer mask on the layer", "layer": "New layer holding the matte", "selection": "Selection",
    }, "mask"),
    ("device", "Device", "Where the model runs (auto: the GPU when there is one)", {
        "auto": "Auto", "gpu": "GPU", "cpu": "CPU",
    }, "auto"),
    ("model", "Model size", "small: DFIMat-S, faster; base: DFIMat, larger", {
        "small": "Small (DFIMat-S, fast)", "base": "Base (DFIMat, larger, slower)",
    }, "small"),
    ("unnamed-paths", "Paths not named fg/bg", "How to use paths whose name starts with neither fg/+ nor bg/-", {
        "foreground": "Foreground", "background": "Background", "ignore": "Ignore them",
    }, "foreground"),
)
assert {c[0] for c in CHOICES} == {"output", "device", "model", "unnamed-paths"}
assert set(CHOICES[0][3]) == set(OUTPUTS) and set(CHOICES[1][3]) == set(DEVICES)
assert set(CHOICES[2][3]) == set(MODELS) and set(CHOICES[3][3]) == set(UNNAMED)

DESCRIPTION = (
    "Cut out one person with DFIMat. Paths named 'fg ...' or '+...' mark the person, 'bg ...' or "
    "'-...' mark what is not the person (a one-anchor or very short stroke is a click, a longer "
    "one a scribble); a rectangle selection is a box around them; the description is text. "
    "Run again with more paths to refine: each run is the next round."
)

DIALOG_HELP = (
    "Paths named 'fg ...' or '+...' mark the person, 'bg ...' or '-...' the rest.\n"
    "One anchor (or a stroke under 4 px) is a click, longer strokes are scribbles.\n"
    "A selection is a box around the person. Each run refines the last (next round)."
)


def _models_root() -> str | None:
    return os.environ.get("DFIMAT_DEFAULT_MODELS") or None


class DFIMatPlugIn(Gimp.PlugIn):
    """One procedure; everything it needs is declared in ``do_create_procedure``."""

    def do_query_procedures(self):
        return [PROC_NAME]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        proc = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, self.run, None)
        proc.set_image_types("RGB*, GRAY*")
        proc.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        proc.set_menu_label(LABEL)
        for path in MENU_PATHS:
            proc.add_menu_path(path)
        proc.set_documentation("Interactive multi-person matte (DFIMat)", DESCRIPTION, name)
        proc.set_attribution("DFIMat-for-GIMP", "DFIMat-for-GIMP contributors", "2026")
        proc.add_string_argument("description", "Description",
                                 "Optional words about the person, e.g. 'the man in the red coat'", "", _RW)
        for arg, label, blurb, options, default in CHOICES:
            ch = Gimp.Choice.new()
            for i, (nick, text) in enumerate(options.items()):
                ch.add(nick, i, text, "")
            proc.add_choice_argument(arg, label, blurb, ch, default, _RW)
        proc.add_boolean_argument("snap-edges", "Snap to edges",
                                  "Move the matte's outline onto the picture's colour edges", True, _RW)
        proc.add_boolean_argument("start-over", "Start over",
                                  "Forget earlier rounds on this layer and start at round 1", False, _RW)
        proc.add_int_return_value("round", "Round", "The round this run made", 0, 1 << 30, 0, _RW)
        proc.add_string_return_value("message", "Message", "What was done, on which device, how long", "", _RW)
        return proc

    def run(self, procedure, run_mode, image, drawables, config, run_data):
        if run_mode == Gimp.RunMode.INTERACTIVE:
            # GIMP offers the last values used; "Start over" must not stick, or every later
            # round would silently start over too.
            config.set_property("start-over", False)
            GimpUi.init("dfimat")
            dialog = GimpUi.ProcedureDialog.new(procedure, config, "Interactive Matte (DFIMat)")
            dialog.get_label("dfimat-help", DIALOG_HELP, False, False)
            dialog.fill(["dfimat-help", "description", *(c[0] for c in CHOICES), "snap-edges", "start-over"])
            ok = dialog.run()
            dialog.destroy()
            if not ok:
                return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, None)
        try:
            layer = gimp_io.target_layer(list(drawables))
            opts = Options(
                output=config.get_property("output"),
                device=config.get_property("device"),
                model=config.get_property("model"),
                start_over=bool(config.get_property("start-over")),
                unnamed=config.get_property("unnamed-paths"),
                text=config.get_property("description") or "",
                snap_edges=bool(config.get_property("snap-edges")),
            ).normalised()
            Gimp.progress_init(f"DFIMat: reading '{layer.get_name()}'")
            job = Job(
                image=gimp_io.read_pixels(layer),
                paths=gimp_io.read_paths(image),
                selection=gimp_io.read_selection(image),
                offset=gimp_io.layer_offset(layer),
                parasites=gimp_io.read_state_parasites(layer),
                options=opts,
            )

            def progress(frac: float, text: str) -> None:
                Gimp.progress_set_text(f"DFIMat: {text}")
                Gimp.progress_update(frac)

            outcome = run_job(job, _models_root(), progress=progress)
            gimp_io.write_outcome(image, layer, outcome, opts.output)
            Gimp.progress_update(1.0)
        except (JobError, InputError, ValueError) as exc:
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(exc)))
        except Exception as exc:  # a bug or a broken install: still a message, not a crash dialog
            return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR,
                                               GLib.Error(f"DFIMat failed unexpectedly: {exc!r}"))
        if run_mode == Gimp.RunMode.INTERACTIVE:
            Gimp.displays_flush()
        Gimp.message(outcome.message)
        values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, None)
        _set(values, 1, outcome.round)
        _set(values, 2, outcome.message)
        return values


def _set(values, index: int, value) -> None:
    # new_return_values already holds defaults for every return value: replace, don't append.
    gv = GObject.Value()
    gv.init(GObject.TYPE_INT if isinstance(value, int) else GObject.TYPE_STRING)
    if isinstance(value, int):
        gv.set_int(value)
    else:
        gv.set_string(value)
    values.remove(index)
    values.insert(index, gv)


def main() -> None:
    Gimp.main(DFIMatPlugIn.__gtype__, sys.argv)
