"""What one seat knows -> a Round the search can start from (blobzero/agent/position.py).

The property that matters: the rebuilt round looks exactly like the true one to the asking seat
(the network's observation is identical) and the search from it is the same search, whatever the
hidden cards really were.
"""
from __future__ import annotations

import random

import numpy as np
import pytest

from blobcore.encode import encode
from blobcore.rules import Round, card_index
from blobcore.search_config import PLAIN
from blobzero.agent.engine import Engine
from blobzero.agent.models import OnnxModels
from blobzero.agent.position import Play, PositionError, SeatKnowledge, build_round
from plumbing import config as configuration


def knowledge_of(rnd: Round) -> SeatKnowledge:
    """What the player to move in ``rnd`` knows."""
    seat = rnd.current_player
    history = tuple(Play(s, bid=a) if i < rnd.n_players else Play(s, card=a)
                    for i, (s, a) in enumerate(rnd.history))
    return SeatKnowledge(rnd.n_players, rnd.cards, rnd.dealer, rnd.trump, seat, tuple(rnd.hand(seat)), history)


def random_positions(count: int, seed: int):
    rng = random.Random(seed)
    while count:
        players = rng.randint(3, 8)
        rnd = Round.from_seed(rng.randrange(1 << 30), players, rng.randint(1, 52 // players))
        for _ in range(rng.randrange(players + players * rnd.cards)):
            rnd.apply(rng.choice(rnd.legal_actions()))
        if not rnd.is_terminal:
            count -= 1
            yield rnd


def test_rebuilt_round_looks_the_same_to_the_asking_seat():
    shown_out = 0
    for rnd in random_positions(300, seed=1):
        built = build_round(knowledge_of(rnd), seed=7)
        seat = rnd.current_player
        obs_true, mask_true = encode(rnd)
        obs_built, mask_built = encode(built)
        assert np.array_equal(obs_true, obs_built) and np.array_equal(mask_true, mask_built)
        assert built.hand(seat) == rnd.hand(seat) and built.void_suits == rnd.void_suits
        assert built.history == rnd.history and built.current_player == seat
        shown_out += sum(len(v) for v in rnd.void_suits)
    assert shown_out > 50          # the void-learning path was exercised


def test_search_from_the_rebuilt_round_is_the_search_from_the_true_deal():
    """Determinization resamples every hidden card from the mover's view, so the true deal and the
    rebuilt one give the same visits (uniform evaluator: each row's answer depends on the row only)."""
    cfg = configuration.load(None, ["storage.model_repository=/nonexistent-repository"], env={})
    engine = Engine(OnnxModels(cfg), slots=8)
    try:
        for rnd in random_positions(12, seed=2):
            if len(rnd.legal_actions()) < 2:
                continue
            config = PLAIN.sized("light").for_evaluation()
            true = engine.advise(rnd, config, seed=3, timeout=60)
            rebuilt = engine.advise(build_round(knowledge_of(rnd), seed=9), config, seed=3, timeout=60)
            assert true.visits == rebuilt.visits and true.action == rebuilt.action
            assert true.model_version == "uniform"
    finally:
        engine.close()


def test_a_seat_that_showed_out_cannot_have_held_the_suit():
    """Seat 1 discards 2S on a heart lead (so it had no heart) and later plays 6H: no deal explains
    that; the replay names the first action it contradicts."""
    c = card_index
    history = (Play(0, bid=0), Play(1, bid=0), Play(2, bid=0),
               Play(0, card=c("2H")), Play(1, card=c("2S")), Play(2, card=c("3H")),
               Play(2, card=c("4H")), Play(0, card=c("5H")), Play(1, card=c("6H")))
    k = SeatKnowledge(3, 3, 2, None, 0, (c("4C"),), history)
    with pytest.raises(PositionError, match=r"history\[4\]: illegal action .*2S.* must follow hearts while holding 6H"):
        build_round(k)
