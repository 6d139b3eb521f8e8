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


def test_tricks_value_head_is_the_expected_score_of_each_bid():
    """With value_head=tricks, a seat that has bid is worth P(final tricks == bid) * (10+bid)/(10+C),
    computed here independently from the trick distribution; a bid that can no longer be made
    is worth exactly 0, and impossible counts get no probability."""
    import numpy as np
    import torch
    from blobcore import Round, encode
    from blobcore.encode import SLOTS
    from trainer import blobnet
    from trainer.blobnet import build

    # the head reads the observation at the encoder's offsets
    assert SLOTS["bids"][0] == blobnet.OBS_BIDS and SLOTS["tricks_won"][0] == blobnet.OBS_TRICKS_WON
    assert SLOTS["cards"][0] == blobnet.OBS_CARDS and SLOTS["tricks_done"][0] == blobnet.OBS_TRICKS_DONE
    net = build("tiny", seed=3)
    with torch.no_grad():
        net.tricks_out.bias.normal_(0, 1.0)       # a non-uniform trick distribution
    # 3 players, 3 cards, hearts trump (dealer 2): bids 0, 2, 0 then seat 0 plays out.
    r = Round.from_deal([[12, 11, 10], [25, 24, 23], [38, 37, 36]], trump=1, dealer=2)
    for bid in (0, 2):
        r.apply(bid)
    state, _ = encode(r)                              # dealer (seat 2) to bid: seats 0, 1 have bid
    with torch.no_grad():
        _, value, logp = net.heads(torch.tensor(state[None]))
    probs = logp.exp()[0]
    cards = 3
    # relative seats: 0 = seat 2 (to move, no bid yet), 1 = seat 0 (bid 0), 2 = seat 1 (bid 2)
    for rel, bid in ((1, 0), (2, 2)):
        expected = probs[rel, bid] * (10 + bid) / (10 + cards)
        assert abs(float(value[0, rel]) - float(expected)) < 1e-6
    assert float(probs[:, cards + 1:].sum()) < 1e-12          # more than C tricks: impossible
    assert np.allclose(probs.sum(-1).numpy(), 1.0, atol=1e-5)
    r.apply(0)                                                # the dealer (hook forbids 1)
    r.apply(12)                                               # seat 0 leads the A of spades
    r.apply(25)                                               # seat 1 (hearts are trump) ruffs
    r.apply(38)
    assert r.tricks_won == [0, 1, 0]
    state, _ = encode(r)                                      # seat 1 to lead trick 2
    with torch.no_grad():
        _, value, logp = net.heads(torch.tensor(state[None]))
    probs = logp.exp()[0]
    assert float(probs[0, 0]) < 1e-12                         # seat 1 has a trick already
    assert float(probs[0, 1:4].sum()) > 1 - 1e-5              # 1..3 tricks remain possible
    # relative 0 = seat 1 (bid 2, one trick won): value P(2 tricks) * 12/13 > 0
    assert abs(float(value[0, 0]) - float(probs[0, 2]) * 12 / 13) < 1e-6
    r.apply(24)                                               # seat 1 leads trump, wins it
    r.apply(37)
    r.apply(11)
    state, _ = encode(r)                                      # seat 1 has 2 tricks
    with torch.no_grad():
        _, value, logp = net.heads(torch.tensor(state[None]))
    assert r.tricks_won == [0, 2, 0] and r.current_player == 1
    assert abs(float(value[0, 0]) - float(logp.exp()[0, 0, 2]) * 12 / 13) < 1e-6
    # the last trick: seat 1 leads 23 (trump) and must win it; a bid of 2 is then busted
    assert float(logp.exp()[0, 0, 3]) > 0
    r.apply(23)
    state, _ = encode(r)                                      # seat 2 to play, seat 1 will have 3
    with torch.no_grad():
        _, value, _ = net.heads(torch.tensor(state[None]))
    # relative seats from seat 2: 0 = seat 2, 1 = seat 0, 2 = seat 1; seat 1's trick is not
    # counted until the trick ends, so its bid is still possible in the observation.
    assert float(value[0, 2]) > 0


def test_scalar_value_head_still_builds_and_exports(tmp_path):
    from trainer.blobnet import build
    from trainer.export import export_onnx, read_metadata
    net = build("tiny", seed=0, value_head="scalar")
    assert net.tricks_out is None
    path = export_onnx(net, tmp_path / "scalar.onnx")
    assert read_metadata(path)["value_head"] == "scalar"


def test_untrained_trick_head_is_the_binomial_split():
    """The trick logits are a residual on a prior: with the head's own weights at zero, each
    seat's final count is its tricks so far plus Binomial(tricks left, 1/N)."""
    import math

    import torch
    from blobcore import Round, encode
    from trainer.blobnet import build
    net = build("tiny", seed=1)
    with torch.no_grad():
        net.tricks_out.weight.zero_()
        net.tricks_out.bias.zero_()
    r = Round.from_seed(8, n_players=5, cards=6)
    while r.phase == 0:
        r.apply(r.legal_actions()[0])
    for _ in range(5):                                          # the first trick is complete
        r.apply(r.legal_actions()[0])
    state, _ = encode(r)
    with torch.no_grad():
        _, _, logp = net.heads(torch.tensor(state[None]))
    probs = logp.exp()[0].numpy()
    me = r.current_player
    for rel in range(5):
        won = r.tricks_won[(me + rel) % 5]
        for count in range(18):
            k = count - won
            expected = math.comb(5, k) * 0.2 ** k * 0.8 ** (5 - k) if 0 <= k <= 5 else 0.0
            assert abs(probs[rel, count] - expected) < 1e-5
