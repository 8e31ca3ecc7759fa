"""ISCN and MRN behaviour through the public API: every prompt mix, rounds, sizes, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from model import Prompts, build_dfimat, count_parameters, load_checkpoint, save_checkpoint
from model.checkpoint import SAME_AS_INIT_ISCN, SAME_AS_ISCN_INIT, compact_lineage

H, W = 120, 160
KINDS = {
    "click": dict(clicks=[(80.0, 60.0, True), (10.0, 10.0, False)]),
    "scribble": dict(scribbles=[([(70.0, 40.0), (90.0, 80.0), (85.0, 100.0)], True)]),
    "box": dict(boxes=[(50.0, 20.0, 110.0, 115.0)]),
    "text": dict(texts=["the tall woman in the middle"]),
}
MIXES = [c for n in (1, 2, 4) for c in itertools.combinations(KINDS, n)]


def make_prompts(kinds: tuple[str, ...]) -> Prompts:
    merged: dict = {}
    for k in kinds:
        merged.update(KINDS[k])
    return Prompts(**merged)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.rand(1, 3, H, W, generator=g)


@pytest.mark.parametrize("kinds", MIXES, ids=["+".join(m) for m in MIXES])
@torch.no_grad()
def test_every_prompt_mix_with_and_without_previous_mask(small_net, image, kinds) -> None:
    feats = small_net.iscn.encode_image(image)
    out = small_net.iscn.decode(feats, make_prompts(kinds))
    assert out.mask_logits.shape == (1, 1, H, W)
    assert out.class_logits.shape == (1,)
    assert torch.isfinite(out.mask_logits).all() and torch.isfinite(out.class_logits).all()
    m = small_net.iscn.mask_size
    assert out.low_res_logits.shape == (1, 1, m, m)

    prev = out.low_res_logits.sigmoid()
    again = small_net.iscn.decode(feats, make_prompts(kinds), prev_mask=prev)
    assert again.mask_logits.shape == (1, 1, H, W)
    assert torch.isfinite(again.mask_logits).all() and torch.isfinite(again.class_logits).all()

    alpha = small_net.mrn(image, again.mask_logits.sigmoid())
    assert alpha.shape == (1, 1, H, W)
    assert float(alpha.min()) >= 0.0 and float(alpha.max()) <= 1.0


@torch.no_grad()
def test_previous_mask_changes_the_prediction(small_net, image) -> None:
    feats = small_net.iscn.encode_image(image)
    prompts = make_prompts(("click", "box"))
    m = small_net.iscn.mask_size
    left = torch.zeros(1, 1, m, m)
    left[..., : m // 2] = 1.0
    right = torch.flip(left, dims=[-1])
    a = small_net.iscn.decode(feats, prompts, prev_mask=left)
    b = small_net.iscn.decode(feats, prompts, prev_mask=right)
    none = small_net.iscn.decode(feats, prompts)
    assert not torch.equal(a.conflict_map, b.conflict_map)
    assert (a.mask_logits - b.mask_logits).abs().max() > 1e-4
    assert (a.mask_logits - none.mask_logits).abs().max() > 1e-4
    assert int(none.conflict_map.abs().sum()) == 0


@torch.no_grad()
def test_batch_of_images_with_their_own_prompts(small_net) -> None:
    images = torch.rand(2, 3, H, W)
    feats = small_net.iscn.encode_image(images)
    out = small_net.iscn.decode(feats, [make_prompts(("click",)), make_prompts(("box", "text"))])
    assert out.mask_logits.shape == (2, 1, H, W) and out.class_logits.shape == (2,)
    single = small_net.iscn.decode(
        small_net.iscn.encode_image(images[1:]), make_prompts(("box", "text"))
    )
    torch.testing.assert_close(out.mask_logits[1:], single.mask_logits, atol=1e-4, rtol=1e-4)


@torch.no_grad()
@pytest.mark.parametrize("variant", ["small", "base"])
def test_odd_sizes_come_back_at_the_same_size(variant, small_net, base_net) -> None:
    net = small_net if variant == "small" else base_net
    image = torch.rand(1, 3, 333, 517)
    feats = net.iscn.encode_image(image)
    out = net.iscn.decode(feats, Prompts(clicks=[(250.0, 160.0, True)]))
    assert out.mask_logits.shape == (1, 1, 333, 517)
    alpha = net.mrn(image, out.mask_logits.sigmoid())
    assert alpha.shape == (1, 1, 333, 517)
    assert torch.isfinite(alpha).all()


@torch.no_grad()
def test_tiny_and_non_multiple_of_eight_mrn_inputs(small_net) -> None:
    for h, w in [(17, 23), (64, 64), (65, 130)]:
        alpha = small_net.mrn(torch.rand(1, 3, h, w), torch.rand(1, 1, h, w))
        assert alpha.shape == (1, 1, h, w)


@pytest.mark.parametrize(
    ("prompts", "message"),
    [
        (Prompts(), "no inputs"),
        (Prompts(clicks=[(500.0, 5.0, True)]), "click 1"),
        (Prompts(boxes=[(5.0, 5.0, 5.0, 50.0)]), "box 1"),
        (Prompts(scribbles=[([], False)]), "scribble 1"),
    ],
)
def test_bad_prompts_raise_value_error(small_net, image, prompts, message) -> None:
    feats = small_net.iscn.encode_image(image)
    with pytest.raises(ValueError, match=message):
        small_net.iscn.decode(feats, prompts)


def test_bad_shapes_raise_value_error(small_net, image) -> None:
    with pytest.raises(ValueError, match="image must be"):
        small_net.iscn.encode_image(torch.rand(3, H, W))
    feats = small_net.iscn.encode_image(image)
    with pytest.raises(ValueError, match="probabilities"):
        small_net.iscn.decode(feats, make_prompts(("click",)), prev_mask=torch.full((1, 1, 8, 8), 3.0))
    with pytest.raises(ValueError, match="coarse mask"):
        small_net.mrn(image, torch.rand(1, 1, H, W + 1))
    with pytest.raises(ValueError, match="unknown variant"):
        build_dfimat("huge")


def test_small_has_at_most_40_percent_of_base(small_net, base_net) -> None:
    small, base = count_parameters(small_net), count_parameters(base_net)
    assert small <= 0.4 * base, (small, base)
    # The frozen MiniLM is shared and not counted: it has no trainable parameters.
    assert count_parameters(base_net.iscn.text_encoder) == 0


def test_checkpoint_round_trip_restores_outputs(tmp_path, small_net, image) -> None:
    path = tmp_path / "m.pt"
    save_checkpoint(small_net, path, extra={"step": 3})
    assert path.stat().st_size < 30e6  # MiniLM is not inside
    net, extra = load_checkpoint(path)
    net.eval()
    assert extra == {"step": 3}
    p = make_prompts(("click", "text"))
    with torch.no_grad():
        a = small_net.iscn.decode(small_net.iscn.encode_image(image), p).mask_logits
        b = net.iscn.decode(net.iscn.encode_image(image), p).mask_logits
    torch.testing.assert_close(a, b)


def test_load_checkpoint_rejects_garbage(tmp_path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_compact_lineage_writes_each_ancestor_once_and_keeps_distinct_ones() -> None:
    """A chain of continuations recorded before compaction doubled with every link; compacting it
    keeps every ancestor once and leaves an MRN start that differs from its ISCN's in full."""
    def continued(parent: dict, n: int) -> dict:
        return {"path": f"r{n}/mrn_last.pt", "step": n, "init_from": parent,
                "iscn_training": {"step": 10 * n, "init_from": parent}}

    chain = {"path": "r0/mrn_last.pt", "step": 0}
    for n in range(1, 6):
        chain = continued(chain, n)
    compact = compact_lineage(chain)
    text = str(compact)
    for n in range(6):
        assert text.count(f"'path': 'r{n}/mrn_last.pt'") == (1 if n == 5 else 2), n  # the record + one reference
    node, depth = compact, 0
    while "iscn_training" in node:
        assert node["init_from"] == {"path": node["iscn_training"]["init_from"]["path"], "same_as": SAME_AS_ISCN_INIT}
        node, depth = node["iscn_training"]["init_from"], depth + 1
    assert depth == 5 and node == {"path": "r0/mrn_last.pt", "step": 0}, "nothing of the ancestry is lost"
    other = {"init_from": {"path": "a.pt"}, "iscn_training": {"init_from": {"path": "b.pt"}}}
    assert compact_lineage(other) == other, "different starts are both kept"
    assert compact_lineage(compact) == compact, "compacting twice changes nothing"


def test_compact_lineage_keeps_mrn_only_continuations_linear() -> None:
    """MRN-only steps (``--init`` the last MRN checkpoint, ``--iscn`` its ISCN) held the ISCN's record
    once per step more: the manifest doubled with each. Compacted, each step adds a constant amount."""
    iscn = {"step": 100, "init_from": {"path": "r0/mrn_last.pt", "step": 0}}
    node = {"path": "r1/mrn_last.pt", "step": 1, "iscn_checkpoint": "r1/iscn_last.pt", "iscn_training": iscn}
    sizes = []
    for n in range(2, 8):
        node = compact_lineage({"path": f"r{n}/mrn_last.pt", "step": n, "iscn_checkpoint": "r1/iscn_last.pt",
                                "init_from": node, "iscn_training": iscn})
        sizes.append(len(str(node)))
        assert node["iscn_training"] == {"path": "r1/iscn_last.pt", "same_as": SAME_AS_INIT_ISCN}
    steps = [b - a for a, b in zip(sizes, sizes[1:], strict=False)]
    assert max(steps) - min(steps) <= 2, sizes  # linear, not doubling
    first = node
    while "same_as" in first.get("iscn_training", {}):
        first = first["init_from"]
    assert first["path"] == "r1/mrn_last.pt" and first["iscn_training"] == iscn, "the ISCN's record is kept once"
    assert compact_lineage(node) == node, "compacting twice changes nothing"
