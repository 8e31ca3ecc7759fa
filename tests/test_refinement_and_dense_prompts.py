"""MRN starts from the coarse mask and has its Table 6 variants; the ISCN sees where the inputs are."""

from __future__ import annotations

import pytest
import torch

from model import Prompts, build_dfimat, load_checkpoint, save_checkpoint
from model.iscn import PromptTensors
from model.modeling.contrastive_reasoning import prompt_maps
from plugin.prompts import encode_prompts

H, W = 100, 140


def disk(blur: int = 0) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    m = (((yy - 50) ** 2 + (xx - 70) ** 2) < 30**2).float()[None, None]
    return torch.nn.functional.avg_pool2d(m, 2 * blur + 1, 1, blur) if blur else m


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("branches", ["hybrid", "global", "local"])
@pytest.mark.parametrize("blur", [0, 6])
@torch.no_grad()
def test_untrained_mrn_returns_the_coarse_mask(image, branches, blur) -> None:
    net = build_dfimat("small", text_encoder=False, mrn_branches=branches).eval()
    coarse = disk(blur)
    alpha = net.mrn(image, coarse)
    assert float((alpha - coarse).abs().max()) <= 1.1e-3


@torch.no_grad()
def test_mrn_branch_variants_drop_their_branch(image) -> None:
    local = build_dfimat("small", text_encoder=False, mrn_branches="local")
    assert local.mrn.global_branch is None
    assert not any(n.startswith("global_branch") for n, _ in local.mrn.named_parameters())

    glob = build_dfimat("small", text_encoder=False, mrn_branches="global").eval()
    for m in (glob.mrn.fuse8.head, glob.mrn.fuse4.head, glob.mrn.fuse1[-1]):
        torch.nn.init.normal_(m.weight, std=0.1)  # make the output depend on the features
    coarse = disk(3)
    before = glob.mrn(image, coarse)
    for p in glob.mrn.local8.parameters():
        p.add_(1.0)  # the global-only MRN must not read the local branch
    torch.testing.assert_close(glob.mrn(image, coarse), before)


def test_mrn_branches_survive_a_checkpoint_and_bad_names_fail(tmp_path) -> None:
    net = build_dfimat("small", text_encoder=False, mrn_branches="local")
    save_checkpoint(net, tmp_path / "m.pt")
    loaded, _ = load_checkpoint(tmp_path / "m.pt", text_encoder=False)
    assert loaded.config.mrn_branches == "local" and loaded.mrn.global_branch is None
    with pytest.raises(ValueError, match="branches"):
        build_dfimat("small", text_encoder=False, mrn_branches="both")


def test_prompt_maps_mark_the_inside_of_boxes() -> None:
    p = Prompts(boxes=[(25, 25, 75, 75)], clicks=[(12.5, 87.5, True)])
    t = PromptTensors.from_arrays(encode_prompts(p, 100, 100))
    fg, bg, inside = prompt_maps(t.points, t.kinds, t.labels, t.valid, (4, 4), radius=0.05)
    expected_inside = torch.zeros(4, 4)
    expected_inside[1:3, 1:3] = 1.0
    assert torch.equal(inside[0], expected_inside)
    assert torch.equal(bg[0], 1.0 - expected_inside)  # outside the box is background
    assert fg[0, 3, 0] == 1.0 and float(fg.sum()) == 1.0


@torch.no_grad()
def test_dense_prompt_embedding_reaches_the_mask(image) -> None:
    net = build_dfimat("small", text_encoder=False).eval()
    feats = net.iscn.encode_image(image)
    box = Prompts(boxes=[(30.0, 20.0, 90.0, 90.0)])
    fresh = net.iscn.decode(feats, box).mask_logits
    torch.nn.init.normal_(net.iscn.dense_prompts.body[-1].weight, std=0.5)
    trained = net.iscn.decode(feats, box).mask_logits
    assert not torch.allclose(fresh, trained)
    # Moving the box moves what the dense path adds.
    moved = net.iscn.decode(feats, Prompts(boxes=[(10.0, 10.0, 50.0, 60.0)])).mask_logits
    assert not torch.allclose(trained, moved)
