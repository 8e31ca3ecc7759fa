"""Re-fit BatchNorm statistics to what a network actually sees, keeping its eval-mode function.

Why: a BatchNorm trains on its batch's statistics but answers with its running ones. When the
two disagree, the first training steps of a continuation compute a different function from the
model that was started from, and undo part of its training before they improve on it. They
disagree most for a checkpoint read back from ONNX graphs (``export.recover``): there every
BatchNorm is an identity (mean 0, variance 1) and its convolution carries the folded weights, so
in training mode it would normalize activations the trained model never normalized.

How: run the network in eval mode over a few batches, record each BatchNorm's input mean and
variance per channel, then move its running statistics there and rescale its weight and bias so
that eval mode gives the same outputs as before (exactly, up to float rounding). Training mode,
whose batch statistics are now close to the running ones, then starts where eval mode is.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def batchnorm_input_stats(module: nn.Module, run: Callable[[], None]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel (mean, variance) of every BatchNorm2d's input while ``run`` runs ``module``
    in eval mode without gradients (pooled over all calls; population variance)."""
    sums: dict[str, list[torch.Tensor]] = {}
    hooks = []

    def hook_for(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0].detach().double()
            n = x.numel() / x.shape[1]
            s = sums.setdefault(name, [torch.zeros((), dtype=torch.float64), torch.zeros(x.shape[1], dtype=torch.float64),
                                       torch.zeros(x.shape[1], dtype=torch.float64)])
            s[0] += n
            s[1] += x.sum(dim=(0, 2, 3)).cpu()
            s[2] += (x * x).sum(dim=(0, 2, 3)).cpu()
        return hook

    for name, m in module.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_pre_hook(hook_for(name)))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            run()
    finally:
        for h in hooks:
            h.remove()
        module.train(was_training)
    stats = {}
    for name, (n, s1, s2) in sums.items():
        mean = s1 / n
        stats[name] = (mean, (s2 / n - mean * mean).clamp_min(0.0))
    return stats


def recalibrate_batchnorm(module: nn.Module, run: Callable[[], None]) -> int:
    """Move every BatchNorm2d's running statistics to its measured input statistics (see the
    module docstring), its eval-mode output unchanged; returns how many BatchNorms it moved.

    A BatchNorm ``run`` never reached keeps its values. Raises ``ValueError`` for a BatchNorm
    without affine parameters (its output could not be kept)."""
    mods = dict(module.named_modules())
    for name, bn in mods.items():  # before anything moves: a refusal leaves the module as it was
        if isinstance(bn, nn.BatchNorm2d) and (bn.weight is None or bn.bias is None or bn.running_mean is None
                                               or bn.running_var is None):
            raise ValueError(f"BatchNorm {name} has no affine parameters or running statistics to move")
    stats = batchnorm_input_stats(module, run)
    with torch.no_grad():
        for name, (mean, var) in stats.items():
            bn = mods[name]
            old_std = torch.sqrt(bn.running_var.double().cpu() + bn.eps)
            new_std = torch.sqrt(var + bn.eps)
            w, b = bn.weight.double().cpu(), bn.bias.double().cpu()
            # eval: (x - m) / s * w + b  ==  (x - m') / s' * w' + b'
            new_w = w * new_std / old_std
            new_b = b + (mean - bn.running_mean.double().cpu()) * w / old_std
            dev, dt = bn.weight.device, bn.weight.dtype
            bn.weight.copy_(new_w.to(dev, dt))
            bn.bias.copy_(new_b.to(dev, dt))
            bn.running_mean.copy_(mean.to(dev, bn.running_mean.dtype))
            bn.running_var.copy_(var.to(dev, bn.running_var.dtype))
    return len(stats)
