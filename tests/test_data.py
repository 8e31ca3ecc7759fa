"""Dataset readers: both layouts, and every kind of bad input named in the error."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from training.data import DataError, MattingDataset, image_size, main

H, W = 24, 32


def _write_sample(
    base: Path,
    name: str,
    n: int = 2,
    sub: str = "",
    ext: str = ".png",
    depth16: bool = False,
    texts: dict[int, str] | None = None,
) -> list[np.ndarray]:
    """Write one image and n alphas (instance k covers columns 8k..8k+12) and return the alphas."""
    img_dir = base / "images" / sub
    img_dir.mkdir(parents=True, exist_ok=True)
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = 200  # red in RGB
    image[..., 2] = 10
    assert cv2.imwrite(str(img_dir / f"{name}{ext}"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    alpha_dir = base / "alphas" / sub / name
    alpha_dir.mkdir(parents=True, exist_ok=True)
    alphas = []
    for k in range(n):
        a = np.zeros((H, W), np.float32)
        a[4:20, 8 * k : 8 * k + 12] = 1.0
        a[4:20, 8 * k + 12 : 8 * k + 14] = 0.5
        if depth16:
            cv2.imwrite(str(alpha_dir / f"{k:02d}.png"), np.round(a * 65535).astype(np.uint16))
        else:
            cv2.imwrite(str(alpha_dir / f"{k:02d}.png"), np.round(a * 255).astype(np.uint8))
        alphas.append(a)
    for k, text in (texts or {}).items():
        t_dir = base / "texts" / sub / name
        t_dir.mkdir(parents=True, exist_ok=True)
        (t_dir / f"{k:02d}.txt").write_text(text + "\nsecond line ignored\n", encoding="utf-8")
    return alphas


def test_canonical_layout_round_trip(tmp_path: Path) -> None:
    alphas = _write_sample(tmp_path, "b", n=3, texts={0: "the person on the left", 2: "  "})
    _write_sample(tmp_path, "a", n=1, ext=".jpg", depth16=True)
    (tmp_path / "meta.json").write_text(json.dumps({"seed": 7}))
    ds = MattingDataset(tmp_path)
    assert ds.layout == "canonical" and ds.names == ["a", "b"] and len(ds) == 2
    assert ds.meta == {"seed": 7}
    s = ds[1]
    assert s.name == "b"
    assert s.image.shape == (H, W, 3) and s.image.dtype == np.uint8
    assert tuple(s.image[0, 0]) == (200, 0, 10)  # RGB order, not OpenCV's BGR
    assert s.alphas.shape == (3, H, W) and s.alphas.dtype == np.float32
    np.testing.assert_allclose(s.alphas, np.stack(alphas), atol=1 / 255)
    assert s.texts == ["the person on the left", None, None]
    a16 = ds[0].alphas
    assert a16.shape == (1, H, W)
    assert a16[0, 10, 13] == pytest.approx(32768 / 65535)  # 16-bit precision kept
    assert ds.skipped == [] and "nothing skipped" in ds.describe_skipped()


def test_him2k_layout_by_subset_and_auto(tmp_path: Path) -> None:
    _write_sample(tmp_path, "x1", sub="natural", ext=".jpg")
    _write_sample(tmp_path, "x2", sub="natural", ext=".jpg")
    _write_sample(tmp_path, "c1", sub="comp", ext=".jpg", n=4)
    ds = MattingDataset(tmp_path, subset="natural")
    assert ds.layout == "him2k" and ds.names == ["x1", "x2"]
    assert ds[0].alphas.shape == (2, H, W)
    auto = MattingDataset(tmp_path)
    assert auto.names == ["comp/c1", "natural/x1", "natural/x2"]
    assert auto[0].alphas.shape == (4, H, W)
    with pytest.raises(DataError, match=r"subsets found: \['comp', 'natural'\]"):
        MattingDataset(tmp_path, subset="synthetic")


def test_instances_sorted_naturally(tmp_path: Path) -> None:
    _write_sample(tmp_path, "s", n=1)
    d = tmp_path / "alphas" / "s"
    ones = np.full((H, W), 255, np.uint8)
    cv2.imwrite(str(d / "10.png"), ones // 2)
    cv2.imwrite(str(d / "2.png"), ones)
    (d / "00.png").rename(d / "1.png")
    s = MattingDataset(tmp_path)[0]
    assert [float(a.max()) for a in s.alphas] == [1.0, 1.0, pytest.approx(127 / 255)]
    assert s.alphas[0, 0, 0] == 0.0 and s.alphas[1, 0, 0] == 1.0  # "1" < "2" < "10"


def test_missing_root_folders_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no images/ folder"):
        MattingDataset(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "alphas").mkdir()
    with pytest.raises(DataError, match="no images"):
        MattingDataset(tmp_path)


@pytest.mark.parametrize(
    "breakage, message",
    [
        ("no_alpha_dir", "missing alphas: no folder"),
        ("empty_alpha_dir", "holds no PNG"),
        ("orphan_alpha_dir", "mismatched alpha folder"),
        ("orphan_text", "mismatched description"),
        ("jpg_alpha", "alphas must be PNG"),
        ("size", "size mismatch: alpha"),
        ("not_png", "not a PNG file"),
        ("corrupt_pixels", "corrupt or unreadable alpha PNG"),
        ("corrupt_image", "corrupt or unreadable image"),
        ("empty_instance", "empty instance: alpha"),
    ],
)
def test_bad_input_strict_and_lenient(tmp_path: Path, breakage: str, message: str) -> None:
    _write_sample(tmp_path, "good", n=2)
    _write_sample(tmp_path, "bad", n=2)
    bad_alpha = tmp_path / "alphas" / "bad" / "01.png"
    if breakage == "no_alpha_dir":
        for p in (tmp_path / "alphas" / "bad").iterdir():
            p.unlink()
        (tmp_path / "alphas" / "bad").rmdir()
        culprit = "bad"
    elif breakage == "empty_alpha_dir":
        for p in (tmp_path / "alphas" / "bad").iterdir():
            p.unlink()
        culprit = str(tmp_path / "alphas" / "bad")
    elif breakage == "orphan_alpha_dir":
        (tmp_path / "alphas" / "ghost").mkdir()
        culprit = str(tmp_path / "alphas" / "ghost")
    elif breakage == "orphan_text":
        (tmp_path / "texts" / "bad").mkdir(parents=True)
        (tmp_path / "texts" / "bad" / "07.txt").write_text("nobody")
        culprit = "07.txt"
    elif breakage == "jpg_alpha":
        cv2.imwrite(str(bad_alpha.with_suffix(".jpg")), np.zeros((H, W), np.uint8))
        culprit = "01.jpg"
    elif breakage == "size":
        cv2.imwrite(str(bad_alpha), np.full((H, W + 1), 255, np.uint8))
        culprit = str(bad_alpha)
    elif breakage == "not_png":
        bad_alpha.write_bytes(b"hello, not an image at all, but long enough")
        culprit = str(bad_alpha)
    elif breakage == "corrupt_pixels":
        data = bad_alpha.read_bytes()
        bad_alpha.write_bytes(data[:40] + b"\x00" * 30 + data[70:-20])  # header intact, data broken
        culprit = str(bad_alpha)
    elif breakage == "corrupt_image":
        img = tmp_path / "images" / "bad.png"
        data = img.read_bytes()
        img.write_bytes(data[:40] + b"\x13" * 30)
        culprit = str(img)
    else:  # empty_instance
        cv2.imwrite(str(bad_alpha), np.zeros((H, W), np.uint8))
        culprit = str(bad_alpha)

    with pytest.raises(DataError, match=message) as info:
        ds = MattingDataset(tmp_path)
        for i in range(len(ds)):
            ds[i]
    assert culprit in str(info.value)

    with pytest.warns(UserWarning) if breakage in {"corrupt_pixels", "corrupt_image"} else _no_warning():
        lenient = MattingDataset(tmp_path, strict=False, verify=True)
    assert lenient.skipped, "a problem must be recorded, never dropped silently"
    assert any(message in reason and culprit in reason for _, reason in lenient.skipped)
    assert "see .skipped" in lenient.describe_skipped()
    good = lenient[lenient.names.index("good")]
    assert good.name == "good" and good.alphas.shape == (2, H, W)
    if breakage == "empty_instance":
        assert lenient[lenient.names.index("bad")].alphas.shape == (1, H, W)  # the other one stays


class _no_warning:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def test_lenient_getitem_moves_on_to_next_usable(tmp_path: Path) -> None:
    _write_sample(tmp_path, "a")
    _write_sample(tmp_path, "b")
    (tmp_path / "images" / "a.png").write_bytes(_png_header_only())
    ds = MattingDataset(tmp_path, strict=False)
    with pytest.warns(UserWarning, match="skipping a"):
        s = ds[0]
    assert s.name == "b"
    assert ds.skipped[0][0] == "a"
    assert "1 corrupt or unreadable image" in ds.describe_skipped()


def _png_header_only() -> bytes:
    ok, buf = cv2.imencode(".png", np.zeros((H, W, 3), np.uint8))
    assert ok
    return buf.tobytes()[:33]


def test_image_size_reads_headers(tmp_path: Path) -> None:
    img = np.zeros((17, 29, 3), np.uint8)
    for ext in (".png", ".jpg"):
        cv2.imwrite(str(tmp_path / f"i{ext}"), img)
        assert image_size(tmp_path / f"i{ext}") == (29, 17)
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x04ab")
    with pytest.raises(DataError, match="x.jpg"):
        image_size(tmp_path / "x.jpg")


def test_cli_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_sample(tmp_path, "a")
    assert main([str(tmp_path)]) == 0
    assert "1 usable samples" in capsys.readouterr().out
    cv2.imwrite(str(tmp_path / "alphas" / "a" / "01.png"), np.zeros((H, W), np.uint8))
    _write_sample(tmp_path, "b")
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "empty instance" in out and "01.png" in out
    assert main([str(tmp_path / "nowhere")]) == 2
