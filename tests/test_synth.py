"""Synthetic generator: exact alphas, scene prior, descriptions, determinism, files on disk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.data import MattingDataset
from training.synth import describe, generate, image_rng, main, make_scene

SIZE = (128, 112)


@pytest.fixture(scope="module")
def scenes() -> list:
    return [make_scene(image_rng(5, i), SIZE, "scene") for i in range(8)]


@pytest.fixture(scope="module")
def randoms() -> list:
    return [make_scene(image_rng(5, i), SIZE, "random") for i in range(8)]


def test_sample_shapes_and_ranges(scenes: list, randoms: list) -> None:
    for s in scenes + randoms:
        n = len(s.alphas)
        assert 2 <= n <= 5
        assert s.image.shape == (SIZE[1], SIZE[0], 3) and s.image.dtype == np.uint8
        assert s.alphas.shape == (n, SIZE[1], SIZE[0]) and s.alphas.dtype == np.float32
        assert s.alphas.min() >= 0.0 and s.alphas.max() <= 1.0
        assert (s.alphas.sum(0) + s.others_alpha).max() <= 1.0 + 1e-5
        assert all(a.max() >= 0.5 for a in s.alphas), "every instance is opaque somewhere"
        assert len(s.texts) == n and len(set(s.texts)) == n and all(s.texts)


def test_image_is_the_composite_of_the_alphas(scenes: list, randoms: list) -> None:
    for s in scenes + randoms:
        a = s.alphas[..., None]
        rest = 1.0 - s.alphas.sum(0) - s.others_alpha
        composite = (a * s.foregrounds).sum(0) + s.others_colour + rest[..., None] * s.background
        diff = np.abs(np.round(np.clip(composite, 0, 1) * 255) - s.image.astype(np.float64))
        assert diff.max() <= 1.0


def test_occluded_alpha_has_the_occluders_coverage_removed(scenes: list) -> None:
    overlapped = 0
    for s in scenes:
        for j in range(len(s.alphas)):  # later = nearer = in front
            front_opaque = s.alphas[j] > 0.999
            for i in range(j):
                assert s.alphas[i][front_opaque].max(initial=0.0) < 1e-3
                overlapped += int(((s.alphas[i] > 0.05) & (s.alphas[j] > 0.05)).any() or
                                  s.people[i]["depth"] == "behind")
    assert overlapped >= 3, "scenes must contain real overlap and occlusion"
    assert any(p["depth"] == "behind" for s in scenes for p in s.people)
    assert any(p["depth"] == "front" for s in scenes for p in s.people)


def test_boundaries_are_soft(scenes: list) -> None:
    for s in scenes:
        for a in s.alphas:
            assert ((a > 0.05) & (a < 0.95)).sum() > 20, "hair strands and soft edges give fractional alpha"


def test_scene_prior_depth_orders_and_scales(scenes: list, randoms: list) -> None:
    for s in scenes:
        feet_y = [p["feet"][1] for p in s.people]
        assert feet_y == sorted(feet_y), "nearer people (lower feet) are drawn later"
        # pinhole camera: pixels per metre grow with the feet's distance below the horizon
        ratio = [p["height_px"] / p["height_m"] for p in s.people]
        assert all(np.diff(ratio) >= -1e-6) and all(np.diff(ratio) * np.diff(feet_y) >= -1e-6)
    assert any(s.others_alpha.max() > 0.5 for s in scenes), "mannequins/posts occlude as non-instances"
    # random mode: no ground, no distractors in front, stacking order unrelated to position
    assert all(s.others_alpha.max() == 0.0 for s in randoms)
    assert any([p["feet"][1] for p in s.people] != sorted(p["feet"][1] for p in s.people) for s in randoms)


def test_descriptions_follow_attributes(scenes: list) -> None:
    for s in scenes:
        for p, t in zip(s.people, s.texts, strict=True):
            assert p["colour"] in t
            assert ("child" in t) == (p["kind"] == "child")
            assert {"left": "on the left", "right": "on the right", "middle": "in the middle"}[p["position"]] in t
            cx = p["centre_x"] / SIZE[0]
            assert (cx < 1 / 3) == (p["position"] == "left") and (cx > 2 / 3) == (p["position"] == "right")


def test_describe_makes_duplicates_unique() -> None:
    same = {"kind": "tall", "colour": "red", "position": "left", "depth": "apart"}
    texts = describe([{**same, "centre_x": 30.0}, {**same, "centre_x": 10.0}], 300)
    assert texts == [
        "the tall person in the red top on the left, second of them from the left",
        "the tall person in the red top on the left, first of them from the left",
    ]


def test_generate_is_deterministic_and_readable(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, 3, seed=11, size=(96, 80), workers=1, progress=False)
    generate(b, 3, seed=11, size=(96, 80), workers=2, progress=False)
    generate(c, 3, seed=12, size=(96, 80), workers=1, progress=False)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    assert (a / "images/000000.png").read_bytes() != (c / "images/000000.png").read_bytes()
    ds = MattingDataset(a)
    assert ds.names == ["000000", "000001", "000002"] and ds.meta["seed"] == 11
    s = ds[1]
    mem = make_scene(image_rng(11, 1), (96, 80), "scene")
    np.testing.assert_array_equal(s.image, mem.image)
    np.testing.assert_allclose(s.alphas, mem.alphas, atol=0.5 / 255 + 1e-6)
    assert s.texts == mem.texts
    assert [p["text"] for p in ds.meta["images"]["000001"]] == mem.texts


def test_refuses_to_mix_with_old_output(tmp_path: Path) -> None:
    generate(tmp_path, 1, seed=0, size=(64, 64), workers=1, progress=False)
    with pytest.raises(FileExistsError, match="already holds images"):
        generate(tmp_path, 1, seed=0, size=(64, 64), workers=1, progress=False)
    (tmp_path / "keep.txt").write_text("user file")
    generate(tmp_path, 2, seed=1, size=(64, 64), mode="random", workers=1, progress=False, overwrite=True)
    assert len(MattingDataset(tmp_path)) == 2 and (tmp_path / "keep.txt").exists()


def test_reuse_keeps_only_a_finished_set_made_the_same_way(tmp_path: Path) -> None:
    generate(tmp_path, 2, seed=4, size=(64, 48), workers=1, progress=False)
    (tmp_path / "images/000000.png").write_bytes(b"marker")  # a remake would overwrite this
    generate(tmp_path, 2, seed=4, size=(64, 48), workers=1, progress=False, reuse=True)
    assert (tmp_path / "images/000000.png").read_bytes() == b"marker"
    # other settings: reuse alone refuses to mix, with overwrite it remakes the set
    with pytest.raises(FileExistsError, match="already holds images"):
        generate(tmp_path, 2, seed=5, size=(64, 48), workers=1, progress=False, reuse=True)
    generate(tmp_path, 3, seed=4, size=(64, 48), workers=1, progress=False, reuse=True, overwrite=True)
    assert len(MattingDataset(tmp_path)) == 3 and (tmp_path / "images/000000.png").read_bytes() != b"marker"
    # a set cut short (no meta.json: it is written last) is made again, not reused
    (tmp_path / "meta.json").unlink()
    (tmp_path / "images/000000.png").write_bytes(b"marker")
    generate(tmp_path, 3, seed=4, size=(64, 48), workers=1, progress=False, reuse=True, overwrite=True)
    assert (tmp_path / "images/000000.png").read_bytes() != b"marker"
    assert main(["--out", str(tmp_path), "--count", "3", "--seed", "4", "--size", "64", "48", "--workers", "1",
                 "--reuse"]) == 0


def test_cli_and_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "o"), "--count", "2", "--seed", "3", "--size", "64", "48",
                 "--mode", "random", "--workers", "1"]) == 0
    ds = MattingDataset(tmp_path / "o")
    assert ds.meta["mode"] == "random" and ds[0].image.shape == (48, 64, 3)
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "o"), "--count", "1"])
    assert "already holds images" in capsys.readouterr().err
    with pytest.raises(ValueError, match="mode"):
        make_scene(image_rng(0, 0), SIZE, "collage")
    with pytest.raises(ValueError, match="at least 32x32"):
        make_scene(image_rng(0, 0), (16, 16), "scene")
