"""One optimiser step's arithmetic, shared by the trainer service and ``blobzero bench train``.

``forward`` computes the losses of a batch on the device (bf16 autocast on CUDA); ``apply``
back-propagates, clips the gradient norm to ``CLIP_NORM`` and steps the optimiser unless the
loss or gradient is not finite (then no update and False).
"""
from __future__ import annotations

import torch

from trainer.device import TrainDevice
from trainer.examples import Examples
from trainer.losses import losses

CLIP_NORM = 5.0


def forward(net, device: TrainDevice, batch: Examples, value_weight: float, trick_weight: float
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(policy, value, tricks, weighted total) losses of ``batch`` (host arrays, ideally the
    device's staging ``buffers``), computed on the device; the net is put in training mode."""
    net.train()
    with device.autocast():
        policy, value, tricks = losses(net, device.to_device(batch))
        total = policy + value_weight * value + trick_weight * tricks
    return policy, value, tricks, total


def apply(net, optimizer, total: torch.Tensor) -> bool:
    """Back-propagate ``total`` and step; False (gradients dropped, no update) when the loss
    or the gradient norm is not finite. Leaves the net in eval mode."""
    optimizer.zero_grad(set_to_none=True)
    finite = bool(torch.isfinite(total))
    if finite:
        total.backward()
        finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(net.parameters(), CLIP_NORM)))
    if finite:
        optimizer.step()
    else:
        optimizer.zero_grad(set_to_none=True)
    net.eval()
    return finite
