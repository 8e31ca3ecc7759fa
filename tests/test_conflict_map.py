"""M_ref (the contrastive reasoning module's conflict map) against hand-made expectations."""

from __future__ import annotations

import torch

from model import conflict_map, prompt_maps
from model.iscn import PromptTensors
from plugin.prompts import Prompts, encode_prompts

# A 4x4 grid over a 100x100 image: cell centres at 12.5, 37.5, 62.5, 87.5 pixels.
N = 4


def m_ref(prompts: Prompts, prev: torch.Tensor, prev_valid: float = 1.0) -> torch.Tensor:
    t = PromptTensors.from_arrays(encode_prompts(prompts, 100, 100))
    out = conflict_map(t.points, t.kinds, t.labels, t.valid, prev.view(1, 1, N, N), torch.tensor([prev_valid]))
    return out[0]


def grid(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


def test_foreground_click_on_predicted_background_is_1() -> None:
    got = m_ref(Prompts(clicks=[(12.5, 12.5, True)]), torch.zeros(N, N))
    expected = torch.zeros(N, N, dtype=torch.long)
    expected[0, 0] = 1
    assert torch.equal(got, expected)


def test_foreground_click_on_predicted_foreground_is_no_conflict() -> None:
    got = m_ref(Prompts(clicks=[(12.5, 12.5, True)]), torch.ones(N, N))
    assert int(got.abs().sum()) == 0


def test_background_click_on_predicted_foreground_is_2() -> None:
    got = m_ref(Prompts(clicks=[(87.5, 87.5, False)]), torch.ones(N, N))
    expected = torch.zeros(N, N, dtype=torch.long)
    expected[3, 3] = 2
    assert torch.equal(got, expected)


def test_outside_the_box_is_background_input() -> None:
    got = m_ref(Prompts(boxes=[(25, 25, 75, 75)]), torch.ones(N, N))
    assert torch.equal(got, grid([[2, 2, 2, 2], [2, 0, 0, 2], [2, 0, 0, 2], [2, 2, 2, 2]]))


def test_scribble_covers_its_whole_stroke() -> None:
    prev = torch.zeros(N, N)
    prev[:, 3] = 1.0  # last column predicted foreground
    got = m_ref(Prompts(scribbles=[([(10, 37.5), (90, 37.5)], True)]), prev)
    assert torch.equal(got, grid([[0, 0, 0, 0], [1, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))


def test_mixed_inputs_give_both_conflicts() -> None:
    prev = torch.zeros(N, N)
    prev[2:, 2:] = 1.0  # bottom-right block predicted foreground
    p = Prompts(clicks=[(12.5, 12.5, True), (62.5, 62.5, False)], texts=["someone"])
    got = m_ref(p, prev)
    assert torch.equal(got, grid([[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 2, 0], [0, 0, 0, 0]]))


def test_no_previous_prediction_means_no_conflict() -> None:
    got = m_ref(Prompts(clicks=[(12.5, 12.5, True)], boxes=[(25, 25, 75, 75)]), torch.ones(N, N), prev_valid=0.0)
    assert int(got.abs().sum()) == 0


def test_text_only_has_no_place() -> None:
    assert int(m_ref(Prompts(texts=["the boy"]), torch.ones(N, N)).abs().sum()) == 0


def test_input_maps_radius() -> None:
    t = PromptTensors.from_arrays(encode_prompts(Prompts(clicks=[(50, 50, True)]), 100, 100))
    fg, bg, _ = prompt_maps(t.points, t.kinds, t.labels, t.valid, (N, N), radius=0.2)
    # centres 0.375 / 0.625 are 0.177 from 0.5 diagonally: the middle 2x2 block is within 0.2
    assert torch.equal(fg[0], torch.tensor([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0.0]]))
    assert int(bg.sum()) == 0
