"""Zooming in on the target (plugin.focus): which frame a round gets, inputs in its pixels, and
the previous mask carried from one frame to the next."""

from __future__ import annotations

import math

import numpy as np
import pytest

from plugin.focus import EXPAND, MAX_ZOOM, Frame, focus_frame, frame_for_round, reframe
from plugin.prompts import Prompts

W, H = 1000, 800


def disk(frame: Frame, size: int, cx: float = 500.0, cy: float = 420.0, r: float = 90.0) -> np.ndarray:
    """A soft disk of the full image, sampled at the centres of a size x size grid over ``frame``."""
    u = frame.x0 + (np.arange(size) + 0.5) * frame.width / size
    v = frame.y0 + (np.arange(size) + 0.5) * frame.height / size
    d = np.hypot(u[None, :] - cx, v[:, None] - cy)
    return np.clip((r - d) / 20.0 + 0.5, 0.0, 1.0).astype(np.float32)


def test_round_one_without_a_box_uses_the_whole_image() -> None:
    whole = Frame.whole(W, H)
    for prompts in (Prompts(clicks=[(500, 400, True)]), Prompts(texts=["the tall one"]),
                    Prompts(scribbles=[([(480, 300), (520, 500)], True)])):
        assert focus_frame(prompts, None, whole, W, H, min_side=192) == whole


def test_a_box_gives_a_square_around_it_inside_the_image() -> None:
    whole = Frame.whole(W, H)
    f = focus_frame(Prompts(boxes=[(400, 300, 500, 500)]), None, whole, W, H, min_side=192)
    assert f.width == f.height == pytest.approx(EXPAND * 200, abs=1)
    assert f.x0 <= 400 and f.x1 >= 500 and f.y0 <= 300 and f.y1 >= 500
    assert abs((f.x0 + f.x1) / 2 - 450) <= 1 and abs((f.y0 + f.y1) / 2 - 400) <= 1
    # near a corner the square shifts inside instead of shrinking
    corner = focus_frame(Prompts(boxes=[(0, 0, 100, 200)]), None, whole, W, H, min_side=192)
    assert (corner.x0, corner.y0) == (0, 0) and corner.width == corner.height == pytest.approx(EXPAND * 200, abs=1)
    # a tiny target is not blown up past min_side; a big one is not worth a frame
    tiny = focus_frame(Prompts(boxes=[(500, 400, 510, 420)]), None, whole, W, H, min_side=192)
    assert tiny.width == tiny.height == 192
    assert focus_frame(Prompts(boxes=[(100, 50, 900, 750)]), None, whole, W, H, min_side=192) == whole


def test_previous_mask_and_foreground_inputs_set_the_frame_and_background_inputs_do_not() -> None:
    whole = Frame.whole(W, H)
    prev = disk(whole, 96)  # the disk spans about x 410-590, y 330-510
    near = Prompts(clicks=[(500, 420, True)])
    f = focus_frame(near, prev, whole, W, H, min_side=192)
    assert f != whole and f.x0 < 420 and f.x1 > 580 and f.y0 < 340 and f.y1 > 500
    wider = focus_frame(near.merged(Prompts(clicks=[(700, 420, True)])), prev, whole, W, H, min_side=192)
    assert wider.x1 > 700 and wider.width > f.width
    assert focus_frame(near.merged(Prompts(clicks=[(950, 50, False)])), prev, whole, W, H, min_side=192) == f
    # an empty previous mask says nothing about where the target is
    assert focus_frame(near, np.zeros((96, 96), np.float32), whole, W, H, min_side=192) == whole


def test_inputs_in_the_frame_s_pixels() -> None:
    f = Frame(300, 200, 600, 500)
    prompts = Prompts(
        clicks=[(400, 300, True), (900, 700, False), (310, 210, False)],
        scribbles=[([(350, 250), (450, 350)], True), ([(100, 100), (320, 220), (330, 230)], False),
                   ([(10, 10), (20, 20)], False), ([(310, 300), (200, 300), (590, 300)], False)],
        boxes=[(350, 250, 550, 450)],
        texts=["left"],
    )
    local = f.prompts_inside(prompts)
    assert local.clicks == ((100.0, 100.0, True), (10.0, 10.0, False))
    assert local.scribbles == ((((50.0, 50.0), (150.0, 150.0)), True), (((20.0, 20.0), (30.0, 30.0)), False),
                               (((10.0, 100.0),), False), (((290.0, 100.0),), False))
    assert local.boxes == ((50.0, 50.0, 250.0, 250.0),) and local.texts == ("left",)
    local.validate(f.width, f.height)


def test_crop_and_paste_are_inverse_on_the_frame() -> None:
    f = Frame(3, 2, 9, 7)
    image = np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3)
    part = f.crop(image)
    assert part.shape == (5, 6, 3) and part.flags.c_contiguous and np.array_equal(part, image[2:7, 3:9])
    pasted = f.paste(np.ones((5, 6), np.float32), 12, 10)
    assert pasted.sum() == 30 and pasted[2:7, 3:9].all() and pasted.dtype == np.float32


def test_a_frame_smaller_than_the_encoder_input_is_seen_magnified_and_pasted_back_at_its_size() -> None:
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    small = Frame(100, 100, 300, 250)  # 200 x 150: shown 1.92x
    view = small.view(image, 384)
    assert view.shape == (288, 384, 3) and view.dtype == np.uint8
    # magnified, not moved: the view's mean colour in each quadrant is the crop's
    crop = small.crop(image).astype(np.float64)
    assert abs(view[:144, :192].mean() - crop[:75, :100].mean()) < 1.5
    assert abs(view[144:, 192:].mean() - crop[75:, 100:].mean()) < 1.5
    as_float = small.view(image.astype(np.float32) / 255.0, 384)
    assert as_float.min() >= 0.0 and as_float.max() <= 1.0
    big = Frame(100, 100, 600, 500)
    assert np.array_equal(big.view(image, 384), big.crop(image))
    tiny_picture = image[:150, :200]  # the whole of a picture smaller than the input is not magnified
    assert np.array_equal(Frame.whole(200, 150).view(tiny_picture, 384), tiny_picture)
    # a matte over the view comes back over the frame's pixels (by area), 0 outside
    left = np.zeros((288, 384), np.float32)
    left[:, :192] = 1.0
    pasted = small.paste(left, W, H)
    assert pasted.shape == (H, W)
    assert pasted[100:250, 100:200].min() > 0.999 and pasted[100:250, 200:300].max() < 1e-6
    assert pasted[:100].max() == 0.0 and pasted[:, 300:].max() == 0.0
    assert abs(pasted.sum() - 150 * 100) < 0.1


def test_frames_go_down_to_the_encoder_input_over_max_zoom() -> None:
    whole = Frame.whole(W, H)
    tiny, _ = frame_for_round(Prompts(boxes=[(500, 400, 510, 420)]), None, whole, W, H, size=384)
    assert tiny.width == tiny.height == math.ceil(384 / MAX_ZOOM)
    assert tiny.x0 <= 500 and tiny.x1 >= 510 and tiny.y0 <= 400 and tiny.y1 >= 420


def test_stored_frames_are_checked_against_the_image() -> None:
    assert Frame.from_list([10, 20, 110, 120], W, H) == Frame(10, 20, 110, 120)
    for bad in (None, [], [0, 0, W + 1, H], [50, 50, 40, 60], [0, 0, 10]):
        assert Frame.from_list(bad, W, H) == Frame.whole(W, H)


@pytest.mark.parametrize("source, target", [
    (Frame.whole(W, H), Frame(350, 280, 650, 580)),   # zooming in
    (Frame(350, 280, 650, 580), Frame(300, 250, 700, 650)),  # a wider frame next round
    (Frame(350, 280, 650, 580), Frame(380, 300, 620, 540)),  # a tighter one
])
def test_reframe_carries_a_mask_between_frames(source: Frame, target: Frame) -> None:
    moved = reframe(disk(source, 96), source, target, 96)
    expected = disk(target, 96)
    # equal up to resampling, except where the target frame reaches outside the source (0 there)
    u = target.x0 + (np.arange(96) + 0.5) * target.width / 96
    v = target.y0 + (np.arange(96) + 0.5) * target.height / 96
    step = source.width / 96
    inside = ((u[None, :] > source.x0 + step) & (u[None, :] < source.x1 - step)
              & (v[:, None] > source.y0 + step) & (v[:, None] < source.y1 - step))
    assert np.abs(moved - expected)[inside].max() < 0.12
    assert np.abs(moved - expected)[inside].mean() < 0.01
    assert moved.shape == (96, 96) and moved.dtype == np.float32


def test_reframe_to_its_own_frame_is_the_identity() -> None:
    f = Frame(10, 10, 200, 200)
    mask = disk(f, 96)
    assert np.array_equal(reframe(mask, f, f, 96), mask)


def test_a_round_keeps_the_whole_image_when_no_input_would_be_left_in_its_frame() -> None:
    whole = Frame.whole(W, H)
    prev = disk(whole, 96)
    only_far = Prompts(clicks=[(950, 50, False)])  # the one input lies outside the frame the mask gives
    assert focus_frame(only_far, prev, whole, W, H, min_side=192) != whole
    assert frame_for_round(only_far, prev, whole, W, H, size=384) == (whole, only_far)
    near = Prompts(clicks=[(500, 420, True)])
    frame, local = frame_for_round(near, prev, whole, W, H, size=384)
    assert frame == focus_frame(near, prev, whole, W, H, min_side=192) and local == frame.prompts_inside(near)
