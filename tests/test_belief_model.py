"""Learned beliefs (trainer/belief_model.py, blobzero/beliefs.py): real records from the search
pool, a tiny training run that must beat uniform beliefs on held-out positions, deals drawn from
the learned marginals that always agree with the record, and clear errors on bad input."""
import itertools
import json

import numpy as np
import pytest
import torch

from blobcore.rules import Round
from blobzero import cli
from blobzero.beliefs import Scores, make_records, uniform_and_bid_beliefs
from trainer.belief_model import (CLASSES, BeliefNet, BeliefNetConfig, DealSampler, belief_loss,
                                  evaluate_loss, feasible_classes, holder_counts, positions_from_records,
                                  predict, train, world_from_holders)


@pytest.fixture(scope="module")
def tiny():
    """Expert tables: 200 training rounds and 40 held-out rounds, disjoint seeds; the same
    positions the report uses, labelled from the records' true deals."""
    torch.set_num_threads(1)
    fit = positions_from_records(make_records(200, 500_000, "expert"))
    held = positions_from_records(make_records(40, 600_000, "expert"))
    assert not set(fit.seed) & set(held.seed)
    net, history = train(fit, BeliefNetConfig(hidden=128, depth=2), epochs=6, batch=128, lr=2e-3)
    return fit, held, net, history


def test_positions_carry_true_labels_the_observation_allows(tiny):
    fit, held, _, _ = tiny
    assert len(fit) == 200 * 24 and fit.obs.shape == (len(fit), 256)
    feasible = feasible_classes(torch.from_numpy(held.obs)).numpy()
    for i in range(len(held)):
        rnd = held.position(i)
        v = int(held.viewer[i])
        assert rnd.current_player == v
        labels = held.labels[i]
        unseen = labels >= 0
        assert unseen.sum() == 52 - len(rnd.hand(v)) - len(rnd.played_cards)
        assert feasible[i][unseen, labels[unseen]].all()          # the truth is always allowed
        assert not feasible[i][~unseen].any()                      # seen cards have no holder
        counts = holder_counts(torch.from_numpy(held.obs[i:i + 1])).numpy()[0]
        for r in range(1, 4):
            assert counts[r] == (labels == r).sum() == len(rnd.hand((v + r) % 4))
        assert counts[0] == (labels == 0).sum()


def test_trained_model_beats_uniform_on_held_out_positions(tiny):
    fit, held, net, history = tiny
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    untrained = BeliefNet(BeliefNetConfig(hidden=128, depth=2))
    assert evaluate_loss(net, held) < evaluate_loss(untrained, held)
    # against the uniform belief over consistent deals, position by position
    probs = predict(net, held.obs)
    feasible = feasible_classes(torch.from_numpy(held.obs)).numpy()
    scores = Scores()
    for i in range(len(held)):
        beliefs = uniform_and_bid_beliefs(held.position(i), int(held.viewer[i]), feasible[i],
                                          draws=64, candidates=8, temperature=1.0, seed=i)
        labels = held.labels[i].astype(np.int64)
        scores.add("uniform", 0, beliefs["uniform"], labels)
        scores.add("learned", 0, probs[i], labels)
    table = scores.table()
    assert table["learned"]["all"]["logloss"] < table["uniform"]["all"]["logloss"], table


def test_sampled_deals_are_always_consistent(tiny):
    _, held, net, _ = tiny
    obs = torch.from_numpy(held.obs)
    learned = predict(net, held.obs).astype(np.float64)
    feasible = feasible_classes(obs).numpy()
    counts = holder_counts(obs).numpy()
    rng = np.random.default_rng(0)
    for i in range(len(held)):
        rnd, v = held.position(i), int(held.viewer[i])
        # the learned marginals, and random ones (any positive numbers on the feasible holders)
        for probs in (learned[i], rng.dirichlet(np.ones(CLASSES), size=52) * feasible[i]):
            for holders in DealSampler(probs, counts[i]).sample(6, rng):
                world = world_from_holders(rnd, v, holders)     # replays the history: raises if not
                assert world.hand(v) == rnd.hand(v)
                assert world.played_cards == rnd.played_cards and world.history == rnd.history
                assert [len(h) for h in world.hands] == [len(h) for h in rnd.hands]
                for seat, voids in enumerate(rnd.void_suits):
                    assert not any(c // 13 in voids for c in world.hand(seat))
                assert world.bids == rnd.bids and world.current_player == rnd.current_player


@pytest.mark.parametrize("seed", [3, 4])
def test_sampler_is_exact_on_a_small_position(seed):
    """A full deck (4 x 13) late in the round leaves few unseen cards: enumerate every
    assignment with the right counts, weight each by the product of the card probabilities,
    and compare with the sampler's exact marginals and with its draws."""
    from blobcore import encode
    from blobcore.expert import expert
    rnd = Round.from_seed(seed, 4, 13)
    while rnd.tricks_done < 11 or len(rnd.current_trick) != seed % 4:
        rnd.apply(expert(rnd))
    obs = torch.from_numpy(encode(rnd, rnd.current_player)[0][None])
    counts = holder_counts(obs).numpy()[0]
    feasible = feasible_classes(obs).numpy()[0]
    assert counts[0] == 0 and not feasible[:, 0].any()          # nothing is left undealt
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(CLASSES), size=52) * feasible
    sampler = DealSampler(probs, counts)
    cards = np.flatnonzero(feasible.any(-1))
    holders = [k for k in range(CLASSES) if counts[k] > 0]
    exact, total = np.zeros((52, CLASSES)), 0.0
    for combo in itertools.product(holders, repeat=len(cards)):
        if np.bincount(combo, minlength=CLASSES).tolist() != counts.tolist():
            continue
        w = np.prod([probs[c, k] for c, k in zip(cards, combo)])
        total += w
        for c, k in zip(cards, combo):
            exact[c, k] += w
    assert total > 0
    assert np.allclose(sampler.marginals(), exact / total, atol=1e-9)
    draws = sampler.sample(20_000, rng)
    for c in cards:
        freq = np.bincount(draws[:, c], minlength=CLASSES) / len(draws)
        assert np.abs(freq - exact[c] / total).max() < 0.02


def test_bad_input_gets_a_clear_error(tiny, tmp_path, capsys):
    _, held, net, _ = tiny
    with pytest.raises(ValueError, match=r"obs must have shape \(B, 256\)"):
        net(torch.zeros(3, 255))
    with pytest.raises(ValueError, match="floating point"):
        net(torch.zeros(3, 256, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"obs must have shape"):
        predict(net, np.zeros(256, np.float32))
    with pytest.raises(ValueError, match="disagree"):
        belief_loss(torch.zeros(2, 52, 8), torch.zeros(2, 51, dtype=torch.int64))
    counts = holder_counts(torch.from_numpy(held.obs[:1])).numpy()[0]
    with pytest.raises(ValueError, match=r"probs must be \(52, 8\)"):
        DealSampler(np.ones((52, 7)), counts)
    with pytest.raises(ValueError, match="take"):
        DealSampler(np.ones((52, 8)), counts)                  # seen cards given holders
    with pytest.raises(ValueError, match="finite"):
        DealSampler(np.full((52, 8), np.nan), counts)
    with pytest.raises(ValueError, match=r"holders must have shape \(52,\)"):
        world_from_holders(held.position(0), int(held.viewer[0]), np.zeros(51))
    with pytest.raises(ValueError, match="exactly the cards"):
        world_from_holders(held.position(0), int(held.viewer[0]), np.zeros(52))
    assert cli.main(["beliefs", "report", "--data", str(tmp_path / "none")]) == 2
    assert "belief.pt" in capsys.readouterr().err


def test_command_makes_trains_and_reports(tmp_path, capsys):
    data = tmp_path / "beliefs"
    code = cli.main(["beliefs", "all", "--out", str(data), "--train-rounds", "40", "--heldout-rounds", "3",
                     "--arena-rounds", "2", "--epochs", "1", "--hidden", "32", "--draws", "16",
                     "--deals", "8", "--json", str(tmp_path / "report.json")])
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["sets"]) == {"heldout", "arena"}
    assert report["sets"]["arena"]["positions"] == 2 * 6          # the searcher's plies only
    rows = report["sets"]["heldout"]["rows"]
    assert set(rows) == {"uniform", "uniform_freq", "bids", "bids_sir", "learned", "sampler", "sampler_draws"}
    assert set(rows["learned"]) == {"0", "1", "2", "3", "4", "5", "all"}
    assert all(0 < cell["logloss"] < 5 for row in rows.values() for cell in row.values())
    assert "| learned |" in capsys.readouterr().out
