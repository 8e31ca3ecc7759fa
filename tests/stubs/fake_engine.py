"""The one fake ``plugin.engine`` for plug-in tests that need no models: it keeps MattingEngine's
contract (merge prompts with the state, next round's RoundState, start over on a changed
image) and paints boxes (``box_value``) and clicks (1 or 0) so the tests can check pixels
exactly; ``calls`` records what each ``matte`` got, and the state's extra whether the worker
asked for the outline snapped to edges. The GIMP 2.10 tests copy it over
``plugin/engine.py`` in a temporary copy of the package; the worker tests load it as
``plugin.fake_engine`` (tests/test_gimp_inputs.py)."""

import numpy as np

from .state import RoundState, image_checksum


class EngineError(RuntimeError):
    pass


class MatteResult:
    def __init__(self, alpha, state, device, started_over, notice):
        self.alpha, self.coarse, self.state = alpha, alpha, state
        self.device, self.started_over, self.notice, self.timings = device, started_over, notice, {}


class MattingEngine:
    model_version = "fake-1"
    variant = "small"
    box_value = 0.5
    snap_edges = True  # set by the worker for each round; the state's extra records what it was

    def __init__(self, models_dir=None, device="auto"):
        self.models_dir = models_dir
        self.device = "cpu" if device == "auto" else device
        self.calls = []

    def matte(self, image, prompts, state=None):
        self.calls.append((prompts, state))
        h, w = image.shape[:2]
        checksum = image_checksum(image)
        started_over = state is not None and state.image_checksum != checksum
        prev = None if state is None or started_over else state
        merged = prev.inputs.merged(prompts) if prev else prompts
        alpha = np.zeros((h, w), np.float32)
        for x0, y0, x1, y1 in merged.boxes:
            alpha[int(y0):int(y1), int(x0):int(x1)] = self.box_value
        for x, y, fg in merged.clicks:
            alpha[max(0, int(y) - 2):int(y) + 2, max(0, int(x) - 2):int(x) + 2] = float(fg)
        for pts, fg in merged.scribbles:
            for x, y in pts:
                alpha[min(h - 1, int(y)), min(w - 1, int(x))] = float(fg)
        nxt = RoundState(round=prev.round + 1 if prev else 1, prev_mask=alpha[::4, ::4].copy(),
                         inputs=merged, model_version=self.model_version, image_checksum=checksum,
                         extra={"snap_edges": bool(self.snap_edges)})
        notice = "the image changed since the last round: starting over at round 1" if started_over else None
        return MatteResult(alpha, nxt, self.device, started_over, notice)
