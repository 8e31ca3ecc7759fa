"""Synthetic multi-person matting data with exact alphas and a description per person.

    python -m training.synth --out DIR --count N --seed S [--size W H] [--mode scene|random]

writes the canonical layout read by ``training.data.MattingDataset`` (images/, alphas/, texts/,
meta.json). The paper's SMPMat is made with a diffusion model plus a learned matte interpreter;
we cannot ship that, so this generator keeps what the paper argues matters (Sec. 4, Table 7):

- ``scene`` mode, a scene prior: a ground line (horizon), people standing on the floor with
  their size set by depth (further back = smaller and higher, from a pinhole camera at a random
  height), nearer people drawn last so they occlude farther ones, foreground occluders, and
  person-like distractors (mannequins, posters of figures) that are NOT instances;
- ``random`` mode, the simple compositing of earlier work ([30, 17] in the paper): figures at
  random positions and scales in random order on a cluttered background with no ground line and
  no distractors, for the Table 7 comparison.

Alphas are exact: each object is a premultiplied layer, and a person's alpha is their coverage
times the transmittance of everything in front (alpha_i *= 1 - alpha_front for each occluder),
so sum_i alpha_i <= 1 and image = sum_i alpha_i F_i + (1 - sum of visible alphas) B.

The same seed gives identical bytes: image k uses the generator seeded by (seed, k), and PNGs are
written with fixed OpenCV parameters.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from training.data import Sample
from training.synth_background import make_background
from training.synth_figure import FigureStyle, Layer, render_figure, spread

MODES = ("scene", "random")
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1]  # fixed: same arrays, same bytes; 1 = fast

#: Clothing colours and the names the descriptions use for them.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.80, 0.10, 0.12), "blue": (0.12, 0.25, 0.75), "green": (0.15, 0.55, 0.22),
    "yellow": (0.92, 0.80, 0.15), "orange": (0.93, 0.48, 0.10), "purple": (0.45, 0.18, 0.60),
    "pink": (0.93, 0.52, 0.68), "white": (0.93, 0.93, 0.92), "black": (0.08, 0.08, 0.09),
    "grey": (0.50, 0.50, 0.52), "brown": (0.45, 0.28, 0.15),
}
_SKINS = [(0.95, 0.80, 0.69), (0.87, 0.67, 0.53), (0.72, 0.52, 0.38), (0.55, 0.37, 0.25), (0.36, 0.23, 0.16)]
_HAIRS = [(0.05, 0.04, 0.03), (0.25, 0.15, 0.08), (0.55, 0.35, 0.15), (0.85, 0.70, 0.40), (0.6, 0.6, 0.6),
          (0.45, 0.12, 0.05)]
_BOTTOMS = [(0.10, 0.12, 0.25), (0.15, 0.15, 0.15), (0.35, 0.30, 0.22), (0.55, 0.55, 0.58), (0.2, 0.3, 0.5)]
#: Real heights in metres of the three kinds of person the descriptions name.
KIND_HEIGHTS = {"tall": (1.78, 1.95), "short": (1.50, 1.66), "child": (0.95, 1.30)}
_KIND_P = {"tall": 0.4, "short": 0.4, "child": 0.2}


@dataclass
class SynthSample(Sample):
    """A generated sample plus what it was composed from, so its alphas can be checked."""

    foregrounds: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.float32))
    background: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    others_alpha: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    others_colour: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.float32))
    people: list[dict] = field(default_factory=list)


@dataclass
class _Obj:
    depth: float  # feet y: larger = nearer the camera = drawn later
    layer: Layer
    instance: bool
    attrs: dict


def _over_inplace(img: np.ndarray, layer: Layer) -> None:
    """Composite a layer onto an image in place (used for things painted into the background)."""
    reg = _region(layer, img.shape[1], img.shape[0])
    if reg is None:
        return
    ys, xs, colour, alpha = reg
    part = img[ys, xs]
    part *= spread(1.0 - alpha)
    part += colour


def _style(rng: np.random.Generator, top_name: str, mannequin: bool = False) -> FigureStyle:
    """Random looks for one figure; the top colour is chosen by the caller so it can be named."""
    cloth = None if rng.random() < 0.65 else str(rng.choice(["skirt", "shawl"]))
    pose = {
        "stride": float(rng.uniform(-0.05, 0.05)), "arm_l": float(rng.uniform(0.05, 0.9)),
        "arm_r": float(rng.uniform(0.05, 0.9)), "bend_l": float(rng.uniform(-0.2, 1.2)),
        "bend_r": float(rng.uniform(-0.2, 1.2)), "build": float(rng.uniform(0.85, 1.2)),
        "head_tilt": float(rng.uniform(-1, 1)), "light_a": float(rng.uniform(0.8, 1.15)),
        "light_b": float(rng.uniform(0.8, 1.15)), "blur_angle": float(rng.uniform(0, math.pi)),
    }
    if mannequin:
        grey = tuple(float(v) for v in rng.uniform(0.55, 0.9) * np.array([1.0, 0.95, 0.88]))
        return FigureStyle(grey, grey, grey, grey, mannequin=True, pose=pose)
    jitter = rng.uniform(-0.05, 0.05, 3)
    top = tuple(float(v) for v in np.clip(np.array(PALETTE[top_name]) + jitter, 0, 1))
    return FigureStyle(
        skin=_SKINS[int(rng.integers(len(_SKINS)))], hair=_HAIRS[int(rng.integers(len(_HAIRS)))],
        top=top, bottom=_BOTTOMS[int(rng.integers(len(_BOTTOMS)))], long_hair=bool(rng.random() < 0.45),
        cloth=cloth, cloth_colour=tuple(float(v) for v in rng.uniform(0.2, 1.0, 3)),
        cloth_opacity=float(rng.uniform(0.35, 0.75)),
        motion_blur=float(rng.uniform(3, 11)) if rng.random() < 0.2 else 0.0, pose=pose,
    )


def _pick_kind(rng: np.random.Generator) -> str:
    kinds = list(_KIND_P)
    return kinds[int(rng.choice(len(kinds), p=list(_KIND_P.values())))]


def _place_scene(rng: np.random.Generator, w: int, h: int, n: int, colours: list[str]) -> tuple[list[_Obj], float]:
    """Scene prior: people on a floor below a horizon, sized by depth (pinhole camera)."""
    horizon = h * rng.uniform(0.22, 0.45)
    cam = rng.uniform(1.3, 1.9)  # camera height in metres; heads of people as tall sit near the horizon
    objs: list[_Obj] = []
    xs: list[tuple[float, float]] = []
    for k in range(n):
        kind = _pick_kind(rng)
        metres = rng.uniform(*KIND_HEIGHTS[kind])
        feet_y = horizon + (h - horizon) * rng.uniform(0.4, 1.12)
        px = metres / cam * (feet_y - horizon)
        if xs and rng.random() < 0.75:  # stand near someone: groups overlap in real photos
            ox, opx = xs[int(rng.integers(len(xs)))]
            feet_x = ox + rng.choice([-1, 1]) * rng.uniform(0.08, 0.35) * max(opx, px)
        else:
            feet_x = rng.uniform(0.12, 0.88) * w
        feet_x = float(np.clip(feet_x, 0.05 * w, 0.95 * w))
        xs.append((feet_x, px))
        layer = render_figure(rng, px, (feet_x, feet_y), _style(rng, colours[k]))
        objs.append(_Obj(feet_y, layer, True, {"kind": kind, "colour": colours[k], "height_m": metres,
                                               "height_px": px, "feet": [feet_x, feet_y]}))
    for _ in range(int(rng.integers(0, 3))):  # mannequins standing in the scene: not instances
        feet_y = horizon + (h - horizon) * rng.uniform(0.3, 1.0)
        px = rng.uniform(1.6, 1.9) / cam * (feet_y - horizon)
        layer = render_figure(rng, px, (rng.uniform(0.05, 0.95) * w, feet_y), _style(rng, "grey", mannequin=True))
        objs.append(_Obj(feet_y, layer, False, {"distractor": "mannequin"}))
    if rng.random() < 0.3:  # something right in front of the camera: a post
        x = rng.uniform(0.1, 0.9) * w
        pw = rng.uniform(0.02, 0.06) * w
        pole = np.zeros((h, int(pw) + 6), np.uint8)
        cv2.rectangle(pole, (3, 0), (3 + int(pw), h), 255, -1)
        a = cv2.GaussianBlur(pole, (0, 0), 1.0).astype(np.float32) / 255.0
        rgb = rng.uniform(0.1, 0.6, 3).astype(np.float32)
        objs.append(_Obj(h * 2.0, Layer(a[..., None] * rgb, a, int(x), 0), False, {"distractor": "post"}))
    objs.sort(key=lambda o: o.depth)  # far first: nearer objects are drawn later and occlude
    return objs, horizon


def _place_random(rng: np.random.Generator, w: int, h: int, n: int, colours: list[str]) -> list[_Obj]:
    """Earlier work's compositing: random position, scale and stacking order, no scene."""
    objs = []
    for k in range(n):
        kind = _pick_kind(rng)
        px = rng.uniform(0.3, 0.95) * h
        top = rng.uniform(-0.25 * px, h - 0.55 * px)  # anywhere, as long as most of the figure is in frame
        feet = (rng.uniform(0.05, 0.95) * w, top + px)
        layer = render_figure(rng, px, feet, _style(rng, colours[k]))
        objs.append(_Obj(float(k), layer, True, {"kind": kind, "colour": colours[k], "height_px": px,
                                                 "feet": list(feet)}))
    return objs


def _poster(rng: np.random.Generator, bg: np.ndarray, horizon: float) -> None:
    """A poster of a figure on the wall: person-shaped, but part of the background."""
    h, w = bg.shape[:2]
    pw = rng.uniform(0.1, 0.2) * w
    ph = pw * rng.uniform(1.3, 1.6)
    x0 = rng.uniform(0, w - pw)
    y0 = rng.uniform(0, max(1.0, horizon - ph * 0.8))
    paper = tuple(float(v) for v in rng.uniform(0.6, 1.0, 3))
    cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + pw), int(y0 + ph)), paper, -1)
    cv2.rectangle(bg, (int(x0), int(y0)), (int(x0 + pw), int(y0 + ph)), (0.1, 0.1, 0.1), max(1, int(pw * 0.03)))
    mannequin = rng.random() < 0.5
    style = _style(rng, str(rng.choice(list(PALETTE))), mannequin=mannequin)
    style.motion_blur = 0.0
    _over_inplace(bg, render_figure(rng, ph * 0.8, (x0 + pw / 2, y0 + ph * 0.92), style))


def _region(layer: Layer, w: int, h: int) -> tuple[slice, slice, np.ndarray, np.ndarray] | None:
    """The part of a crop layer inside the frame: image slices and the matching crop views."""
    lh, lw = layer.alpha.shape
    x0, y0 = max(0, layer.x0), max(0, layer.y0)
    x1, y1 = min(w, layer.x0 + lw), min(h, layer.y0 + lh)
    if x1 <= x0 or y1 <= y0:
        return None
    sx, sy = x0 - layer.x0, y0 - layer.y0
    crop = (slice(sy, sy + y1 - y0), slice(sx, sx + x1 - x0))
    return slice(y0, y1), slice(x0, x1), layer.colour[crop], layer.alpha[crop]


def _compose(objs: list[_Obj], bg: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray],
                                                         np.ndarray, np.ndarray]:
    """Stack layers back to front (worked out front to back with a transmittance map, touching
    only each layer's own rectangle). Returns the float image; each instance's visible alpha and
    own coverage; and the visible alpha and premultiplied colour of the non-instances."""
    h, w = bg.shape[:2]
    trans = np.ones((h, w), np.float32)  # transmittance of everything in front
    image = np.zeros((h, w, 3), np.float32)
    vis: list[np.ndarray] = []
    covers: list[np.ndarray] = []
    o_alpha = np.zeros((h, w), np.float32)
    o_colour = np.zeros((h, w, 3), np.float32)
    for obj in reversed(objs):
        reg = _region(obj.layer, w, h)
        if obj.instance:
            v, cov = np.zeros((h, w), np.float32), np.zeros((h, w), np.float32)
            vis.append(v)
            covers.append(cov)
        if reg is None:
            continue
        ys, xs, colour, alpha = reg
        t = trans[ys, xs]
        seen = colour * spread(t)
        image[ys, xs] += seen
        if obj.instance:
            v[ys, xs] = alpha * t
            cov[ys, xs] = alpha
        else:
            o_alpha[ys, xs] += alpha * t
            o_colour[ys, xs] += seen
        t *= 1.0 - alpha  # writes through to trans
    image += bg * spread(trans)
    return image, vis[::-1], covers[::-1], o_alpha, o_colour


def _straight_colours(objs: list[_Obj], w: int, h: int) -> np.ndarray:
    """(N, H, W, 3) un-premultiplied colour of each instance (0 where it has no coverage)."""
    inst = [o for o in objs if o.instance]
    out = np.zeros((len(inst), h, w, 3), np.float32)
    for k, o in enumerate(inst):
        reg = _region(o.layer, w, h)
        if reg is not None:
            ys, xs, colour, alpha = reg
            out[k, ys, xs] = colour / np.maximum(alpha, 1e-6)[..., None]
    return out


def _visible_enough(v: np.ndarray, coverage: np.ndarray, w: int, h: int) -> bool:
    """An instance must be a real target: mostly visible, not a sliver, and opaque somewhere."""
    seen, own = float(v.sum()), float(coverage.sum())
    return own > 0 and seen >= 0.35 * own and seen >= 0.003 * w * h and float(v.max()) >= 0.5


_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth"]


def describe(people: list[dict], w: int) -> list[str]:
    """One description per person from their attributes (kind, colour, position, depth);
    made unique within the image by adding "Nth from the left" where two would read the same."""
    texts = []
    for p in people:
        subject = "child" if p["kind"] == "child" else f"{p['kind']} person"
        where = "in the middle" if p["position"] == "middle" else f"on the {p['position']}"
        depth = {"front": ", standing in front", "behind": ", partly behind someone"}.get(p["depth"], "")
        texts.append(f"the {subject} in the {p['colour']} top {where}{depth}")
    order = sorted(range(len(people)), key=lambda i: people[i]["centre_x"])
    unique = list(texts)
    for i, text in enumerate(texts):
        if texts.count(text) > 1:
            same = [j for j in order if texts[j] == text]
            unique[i] = f"{text}, {_ORDINALS[min(same.index(i), 5)]} of them from the left"
    return unique


def _attributes(objs: list[_Obj], vis: list[np.ndarray], cover: list[np.ndarray], w: int) -> list[dict]:
    inst = [o for o in objs if o.instance]
    people = []
    for i, (o, v) in enumerate(zip(inst, vis, strict=True)):
        ys, xs = np.nonzero(v > 0.02)
        cx = float((v.sum(0) * np.arange(v.shape[1])).sum() / v.sum())
        position = "left" if cx < w / 3 else "right" if cx > 2 * w / 3 else "middle"
        hidden = float(v.sum()) < 0.95 * float(cover[i].sum())
        occludes = any(float((cover[i] * cover[k]).sum()) > 0.05 * float(cover[k].sum()) for k in range(i))
        depth = "behind" if hidden else "front" if occludes else "apart"
        attrs = {key: (round(val, 3) if isinstance(val, float) else val) for key, val in o.attrs.items()}
        attrs["feet"] = [round(float(c), 1) for c in o.attrs["feet"]]
        attrs.update(position=position, depth=depth, centre_x=round(cx, 1), order=i,
                     box=[int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1])
        people.append(attrs)
    return people


def make_scene(rng: np.random.Generator, size: tuple[int, int] = (512, 512), mode: str = "scene",
               keep_layers: bool = True) -> SynthSample:
    """One synthetic image in memory (training can call this directly, no files involved).

    ``keep_layers=False`` leaves ``foregrounds`` empty (they are only needed to check the
    composite, and cost N full-size colour images)."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    w, h = int(size[0]), int(size[1])
    if w < 32 or h < 32:
        raise ValueError(f"size must be at least 32x32, got {w}x{h}")
    for _attempt in range(20):
        # more large groups than small ones: hidden people are dropped below, which thins groups
        n = int(rng.choice([2, 3, 4, 5], p=[0.15, 0.3, 0.3, 0.25]))
        colours = [str(c) for c in rng.choice(list(PALETTE), size=n, replace=False)]
        if mode == "scene":
            objs, horizon = _place_scene(rng, w, h, n, colours)
            bg = make_background(rng, w, h, horizon)
            for _ in range(int(rng.integers(0, 3))):
                _poster(rng, bg, horizon)
        else:
            objs = _place_random(rng, w, h, n, colours)
            bg = make_background(rng, w, h, None)
        while True:  # drop people who ended up (almost) hidden, then recompose
            image, vis, cover, o_alpha, o_colour = _compose(objs, bg)
            inst = [o for o in objs if o.instance]
            bad = [k for k, (v, c) in enumerate(zip(vis, cover, strict=True)) if not _visible_enough(v, c, w, h)]
            if not bad:
                break
            objs.remove(inst[bad[0]])
        if len(vis) >= 2:
            break
    else:
        raise RuntimeError("could not place two visible people in 20 attempts")  # pragma: no cover
    people = _attributes(objs, vis, cover, w)
    texts = describe(people, w)
    for p, t in zip(people, texts, strict=True):
        p["text"] = t
    img8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
    return SynthSample(
        name="scene", image=img8, alphas=np.stack(vis).astype(np.float32), texts=list(texts),
        foregrounds=_straight_colours(objs, w, h) if keep_layers else np.zeros((0, h, w, 3), np.float32),
        background=bg, others_alpha=o_alpha, others_colour=o_colour, people=people,
    )


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of image ``index``: a stable hash of (seed, index), the same in any process."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _encode_png(arr: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", arr, PNG_PARAMS)
    if not ok:  # pragma: no cover - OpenCV only fails on unsupported dtypes
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_sample(out: Path, name: str, sample: Sample) -> None:
    """Write one sample in the canonical layout (8-bit alphas, one text line per instance)."""
    (out / "images" / f"{name}.png").write_bytes(_encode_png(cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)))
    a_dir, t_dir = out / "alphas" / name, out / "texts" / name
    a_dir.mkdir(parents=True, exist_ok=True)
    for k, alpha in enumerate(sample.alphas):
        (a_dir / f"{k:02d}.png").write_bytes(_encode_png(np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)))
        text = sample.texts[k]
        if text is not None:
            t_dir.mkdir(parents=True, exist_ok=True)
            (t_dir / f"{k:02d}.txt").write_text(text + "\n", encoding="utf-8")


def _work(job: tuple[str, int, int, tuple[int, int], str]) -> tuple[str, list[dict]]:
    out, index, seed, size, mode = job
    name = f"{index:06d}"
    sample = make_scene(image_rng(seed, index), size, mode, keep_layers=False)
    write_sample(Path(out), name, sample)
    return name, sample.people


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core is the parallelism; threads would oversubscribe


def _settings(count: int, seed: int, size: tuple[int, int], mode: str) -> dict[str, Any]:
    """meta.json's header: what made the set. Written by ``generate`` and compared by ``reuse``
    from this one place, so the two can never disagree on what "the same settings" means."""
    return {"generator": "training.synth", "format": 1, "seed": seed, "count": count, "size": list(size),
            "mode": mode}


def _finished_with(out: Path, count: int, seed: int, size: tuple[int, int], mode: str) -> bool:
    """Whether ``out`` holds a finished set this generator made with exactly these settings."""
    try:
        meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    expected = _settings(count, seed, size, mode)
    return all(meta.get(k) == v for k, v in expected.items()) and len(meta.get("images", {})) == count


def generate(out_dir: str | Path, count: int, seed: int, size: tuple[int, int] = (512, 512), mode: str = "scene",
             workers: int = 2, overwrite: bool = False, progress: bool = True, reuse: bool = False) -> Path:
    """Write ``count`` images into ``out_dir`` (created if needed) and return it.

    Refuses a folder that already holds images unless ``overwrite`` (which first removes only
    images/, alphas/, texts/ and meta.json there), so old samples never mix with new ones.
    ``reuse`` keeps a finished set made with the same count, seed, size and mode (meta.json is
    written last, so a set cut short is never taken for a finished one): a recipe run again
    does not spend minutes remaking the same bytes.
    ``workers > 1`` starts "spawn" processes (forking a process that already ran OpenCV or torch
    threads can hang), so a script calling this needs the usual ``if __name__ == "__main__":``."""
    from tqdm import tqdm

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    out = Path(out_dir)
    size = (int(size[0]), int(size[1]))
    if reuse and _finished_with(out, count, int(seed), size, mode):
        return out
    if (out / "images").is_dir() and any((out / "images").iterdir()):
        if not overwrite:
            raise FileExistsError(f"{out / 'images'} already holds images; use a new folder or --overwrite")
        for sub in ("images", "alphas", "texts"):
            shutil.rmtree(out / sub, ignore_errors=True)
        (out / "meta.json").unlink(missing_ok=True)
    for sub in ("images", "alphas", "texts"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    jobs = [(str(out), i, int(seed), size, mode) for i in range(count)]
    results: list[tuple[str, list[dict]]] = []
    bar = tqdm(total=count, desc=f"synth {mode}", unit="img", disable=not progress)
    if workers <= 1:
        for job in jobs:
            results.append(_work(job))
            bar.update()
    else:
        with mp.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            for r in pool.imap(_work, jobs, chunksize=4):
                results.append(r)
                bar.update()
    bar.close()
    meta = {**_settings(count, int(seed), size, mode), "images": dict(results)}
    (out / "meta.json").write_text(json.dumps(meta, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m training.synth --out DIR --count N --seed S``."""
    ap = argparse.ArgumentParser(prog="python -m training.synth", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output folder (canonical dataset layout)")
    ap.add_argument("--count", type=int, required=True, help="number of images")
    ap.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    ap.add_argument("--size", type=int, nargs=2, default=(512, 512), metavar=("W", "H"))
    ap.add_argument("--mode", choices=MODES, default="scene", help="scene prior, or random compositing")
    ap.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier generated set in --out")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a finished set in --out made with the same count, seed, size and mode")
    args = ap.parse_args(argv)
    from training import synth  # run the importable module's functions, not __main__'s copies

    try:
        synth.generate(args.out, args.count, args.seed, tuple(args.size), args.mode, args.workers, args.overwrite,
                        reuse=args.reuse)
    except (FileExistsError, ValueError) as exc:
        ap.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
