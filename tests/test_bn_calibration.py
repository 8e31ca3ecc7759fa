"""BatchNorm re-fitting (training/bn_calibration.py): eval-mode outputs stay, running statistics
move to the inputs' statistics, and training mode then computes what eval mode does, including
for a model read back from ONNX, whose BatchNorms are identities over folded convolutions."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from model import build_dfimat
from training.bn_calibration import batchnorm_input_stats, recalibrate_batchnorm


def conv_bn_net(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 4, 3, padding=1, bias=True), nn.BatchNorm2d(4))
    with torch.no_grad():  # statistics far from what the inputs give, affine parameters not 1 / 0
        for m in net:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-2, 2)
                m.running_var.uniform_(0.1, 3)
                m.weight.uniform_(0.5, 2)
                m.bias.uniform_(-1, 1)
    return net


def test_eval_output_is_kept_and_training_mode_then_matches_it() -> None:
    net = conv_bn_net(0)
    x = torch.randn(6, 3, 16, 16) * 3 + 1
    net.eval()
    with torch.no_grad():
        before = net(x)
    probe = copy.deepcopy(net).train()
    with torch.no_grad():
        train_before = probe(x)  # batch statistics: another function
    assert (train_before - before).abs().max() > 0.5, "the fixture must start with mismatched statistics"

    net.train()
    assert recalibrate_batchnorm(net, lambda: net(x)) == 2
    assert net.training, "the module's mode is restored"
    net.eval()
    with torch.no_grad():
        after = net(x)
    assert torch.allclose(after, before, atol=1e-4), (after - before).abs().max()
    stats = batchnorm_input_stats(net, lambda: net(x))
    for name, (mean, var) in stats.items():
        bn = dict(net.named_modules())[name]
        assert torch.allclose(bn.running_mean, mean.float(), atol=1e-4)
        assert torch.allclose(bn.running_var, var.float(), atol=1e-4, rtol=1e-4)
    net.train()
    for m in net:
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 0.0  # look, don't update
    with torch.no_grad():
        train_after = net(x)
    assert torch.allclose(train_after, before, atol=1e-3), (train_after - before).abs().max()


def test_batchnorms_the_run_never_reaches_keep_their_values() -> None:
    net = conv_bn_net(1)
    first = nn.Sequential(*list(net)[:3])
    saved = {k: v.clone() for k, v in net[4].state_dict().items()}
    assert recalibrate_batchnorm(net, lambda: first(torch.randn(2, 3, 8, 8))) == 1
    for k, v in net[4].state_dict().items():
        assert torch.equal(v, saved[k]), k


def test_batchnorm_without_affine_parameters_is_refused_before_any_moves() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False))
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError, match="no affine"):
        recalibrate_batchnorm(net, lambda: net(torch.randn(2, 3, 4, 4)))
    for k, v in net.state_dict().items():
        assert torch.equal(v, saved[k]), f"{k} moved although the call was refused"


def test_an_mrn_with_identity_batchnorms_trains_from_its_own_function() -> None:
    """The shape export.recover gives: every BatchNorm mean 0, variance 1, weight sqrt(1 + eps),
    the scale inside the convolution. Without re-fitting, training mode would normalize; after,
    it computes the recovered model's output."""
    torch.manual_seed(2)
    mrn = build_dfimat("small", text_encoder=False).mrn
    with torch.no_grad():
        for m in mrn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.weight.fill_(float((1.0 + m.eps) ** 0.5))
                m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, nn.Conv2d):
                m.weight.mul_(3.0)  # a folded scale
        for p in mrn.parameters():  # heads start at zero: give them a say
            if p.abs().sum() == 0:
                p.normal_(0, 0.05)
    images = torch.rand(4, 3, 64, 64)
    coarse = (torch.rand(4, 1, 64, 64) > 0.5).float()

    def outputs(train: bool) -> torch.Tensor:
        mrn.train(train)
        for m in mrn.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.0
        with torch.no_grad():
            return mrn.forward_all(images, coarse).alpha

    reference = outputs(False)
    assert (outputs(True) - reference).abs().max() > 0.05, "identity BatchNorms do change training-mode outputs"
    moved = recalibrate_batchnorm(mrn, lambda: mrn.forward_all(images, coarse))
    assert moved == sum(isinstance(m, nn.BatchNorm2d) for m in mrn.modules()) > 0
    assert torch.allclose(outputs(False), reference, atol=1e-4)
    assert torch.allclose(outputs(True), reference, atol=2e-3), (outputs(True) - reference).abs().max()
