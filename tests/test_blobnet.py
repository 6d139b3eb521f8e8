"""BlobNet: sizes, shapes, the masked softmax, and that training on logits actually learns."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

from plumbing.netspec import NUM_ACTIONS, STATE_DIM, VALUE_DIM
from trainer.blobnet import (PRESETS, BlobNetConfig, ServingNet, build, masked_log_softmax,
                             masked_softmax, preset)


def random_inputs(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = (torch.rand(n, STATE_DIM, generator=g) < 0.25).float()
    mask = (torch.rand(n, NUM_ACTIONS, generator=g) < 0.3).float()
    mask[:, 0] = 1.0
    return state, mask


def test_full_preset_matches_the_reference_cost():
    full = PRESETS["full"]
    assert (full.width, full.depth) == (256, 6)
    assert 4.8e6 <= full.parameters <= 5.0e6            # reference: ≈4.9M
    assert 9.5e6 <= full.flops_per_position <= 10.0e6  # reference: ≈9.8 MFLOP at sequence length 1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_counted_sizes_match_the_module(name):
    net = build(name, seed=0)
    assert sum(p.numel() for p in net.parameters()) == net.config.parameters
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert 2 * sum(m.in_features * m.out_features for m in linears) == net.config.flops_per_position


def test_presets_are_ordered_and_frozen():
    assert PRESETS["tiny"].parameters < PRESETS["small"].parameters < PRESETS["full"].parameters
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["full"].width = 1
    with pytest.raises(ValueError, match="unknown BlobNet preset"):
        preset("huge")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_forward_shapes_and_value_range(name):
    net = build(name, seed=1)
    state, mask = random_inputs(5)
    with torch.no_grad():
        logits, value = net(state)
        policy, served_value = ServingNet(net)(state, mask)
    assert logits.shape == (5, NUM_ACTIONS) and value.shape == (5, VALUE_DIM)
    assert ((value >= 0) & (value <= 1)).all()
    assert torch.equal(value, served_value)
    assert policy.shape == (5, NUM_ACTIONS)


def test_masked_softmax_is_a_distribution_over_legal_actions_only():
    logits = torch.randn(4, NUM_ACTIONS) * 5
    mask = torch.zeros(4, NUM_ACTIONS)
    mask[0, [3, 7]] = 1
    mask[1, :] = 1
    mask[2, 51] = 1  # a single legal action
    # row 3: no legal action at all
    p = masked_softmax(logits, mask)
    assert torch.all(p[mask == 0] == 0)
    assert torch.allclose(p[:3].sum(dim=1), torch.ones(3))
    assert p[2, 51] == 1
    assert torch.all(p[3] == 0) and torch.isfinite(p).all()


def test_masked_log_softmax_is_finite_and_consistent():
    logits = torch.randn(3, NUM_ACTIONS, requires_grad=True)
    mask = (torch.rand(3, NUM_ACTIONS) < 0.5).float()
    mask[:, 5] = 1
    logp = masked_log_softmax(logits, mask)
    assert torch.isfinite(logp).all()  # no -inf: 0 * logp on illegal entries stays 0, not NaN
    legal = mask > 0.5
    assert torch.allclose(logp.exp()[legal], masked_softmax(logits, mask)[legal], atol=1e-6)
    target = mask / mask.sum(dim=1, keepdim=True)
    loss = -(target * logp).sum(dim=1).mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_training_on_logits_learns_a_target_policy_and_value():
    """Regression for the reference's bug (softmax twice, loss stuck at ln 52): a few steps on
    one batch must drive the policy loss well below the uniform-policy entropy."""
    torch.manual_seed(0)
    net = build("tiny", seed=0).train()
    state, mask = random_inputs(32, seed=3)
    target_action = torch.multinomial(mask, 1).squeeze(1)
    target_value = torch.rand(32, VALUE_DIM)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    uniform_loss = (mask.sum(dim=1).log()).mean().item()
    for _ in range(150):
        logits, value = net(state)
        policy_loss = nn.functional.nll_loss(masked_log_softmax(logits, mask), target_action)
        loss = policy_loss + nn.functional.mse_loss(value, target_value)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert policy_loss.item() < 0.25 * uniform_loss
    assert policy_loss.item() < math.log(NUM_ACTIONS) / 4


def test_build_is_deterministic_with_a_seed():
    a, b, c = build("tiny", seed=7), build("tiny", seed=7), build("tiny", seed=8)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_custom_config_builds():
    cfg = BlobNetConfig(width=16, depth=1, hidden=32, value_hidden=8)
    logits, value = build(cfg, seed=0)(torch.zeros(2, STATE_DIM))
    assert logits.shape == (2, NUM_ACTIONS) and value.shape == (2, VALUE_DIM)
