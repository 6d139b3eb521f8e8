"""BlobNet's training losses: one log-softmax over the legal actions (never a softmax twice).

policy: cross-entropy between the search's visit distribution and the masked policy.
value:  mean squared error over the seats at the table, per-seat normalised scores.
tricks: cross-entropy of each seat's predicted final trick count against the tricks it took
        (``tricks`` value head only; zero otherwise), averaged over the seats at the table.
"""
from __future__ import annotations

import torch

from trainer.blobnet import BlobNet, masked_log_softmax
from trainer.examples import FIELDS, Examples


def losses(net: BlobNet, batch: Examples | dict[str, torch.Tensor]
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(policy loss, value loss, trick loss) as scalar float32 tensors for a batch of examples:
    ``Examples`` (numpy, on the CPU) or a dict of its fields as tensors on the net's device
    (``trainer.device.TrainDevice.to_device``). Under bf16 autocast the heads' outputs are cast
    to float32 before the losses."""
    t = batch if isinstance(batch, dict) else {f: torch.from_numpy(getattr(batch, f)) for f in FIELDS}
    states, masks, target_policy, target_value, seats = (
        t["states"], t["masks"], t["policy"], t["value"], t["seats"])
    logits, value, trick_logp = net.heads(states)
    logits, value = logits.float(), value.float()
    trick_logp = None if trick_logp is None else trick_logp.float()
    log_p = masked_log_softmax(logits, masks)
    # target is 0 on illegal actions; where log_p is -1e9-ish the product is exactly 0
    policy_loss = -(target_policy * torch.where(masks > 0.5, log_p, torch.zeros_like(log_p))).sum(1).mean()
    per_seat = seats.sum(1).clamp(min=1)
    value_loss = (((value - target_value) ** 2) * seats).sum(1).div(per_seat).mean()
    if trick_logp is None:
        return policy_loss, value_loss, torch.zeros((), device=policy_loss.device)
    target_tricks = t["tricks"].long().clamp(min=0)                                    # (B, 8)
    taken = torch.gather(trick_logp, 2, target_tricks.unsqueeze(-1)).squeeze(-1)      # (B, 8)
    trick_loss = -(taken * seats).sum(1).div(per_seat).mean()
    return policy_loss, value_loss, trick_loss
