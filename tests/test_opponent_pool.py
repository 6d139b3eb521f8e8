"""Bootstrapping: built-in players in some self-play seats, their moves recorded as imitation
targets, and the config that turns it on."""
import dataclasses
import itertools

import numpy as np
import pytest

from blobcore import Round
from blobcore.expert import expert
from blobcore.players import AGENT_EXPERT
from blobcore.players import PLAYERS, builtin_player
from blobcore.search_config import PLAIN, SearchConfig
from plumbing.config import ConfigError, load
from plumbing.records import to_proto
from selfplay_client import tables
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch
from trainer.examples import from_record


def test_seat_draws_give_the_share_and_always_leave_one_searching_seat():
    draws = [tables.seat_agents(seed, 4, AGENT_EXPERT, 0.5) for seed in range(4000)]
    share = sum(a == AGENT_EXPERT for d in draws for a in d) / (4 * len(draws))
    assert 0.42 < share < 0.5          # 0.5, less the all-expert draws turned back into a model seat
    assert all(0 in d for d in draws)
    assert tables.seat_agents(17, 6, AGENT_EXPERT, 0.5) == tables.seat_agents(17, 6, AGENT_EXPERT, 0.5)
    cfg = load(None, [], env={})
    plain = list(itertools.islice(tables.feed(3, cfg.table), 5))
    pooled = list(itertools.islice(tables.feed(3, cfg.table, AGENT_EXPERT, 0.5), 5))
    assert [p[:3] for p in pooled] == plain and all(len(p) == 6 for p in pooled)


def test_builtin_moves_are_recorded_as_one_visit_decisions_and_train_as_imitation():
    specs = [(seed, 4, 5, -1, -1, (0, AGENT_EXPERT, AGENT_EXPERT, 0)) for seed in range(12)]
    runner = PooledSearch(UniformEvaluator(), dataclasses.replace(PLAIN, determinizations=1, simulations=8), specs,
                          n_games=4, record_builtin=True)
    runner.run()
    for rec in runner.finished():
        rnd = Round.from_deal(rec["hands"], rec["trump"], rec["dealer"])
        by_ply = {d["ply"]: d for d in rec["decisions"]}
        expert_decisions = 0
        for ply, action in enumerate(rec["actions"]):
            seat = rnd.current_player
            if seat in (1, 2) and len(rnd.legal_actions()) > 1:
                assert by_ply[ply]["visits"] == {expert(rnd): 1} and action == expert(rnd)
                expert_decisions += 1
            rnd.apply(action)
        assert expert_decisions >= 2
        examples = from_record(to_proto(rec, "test"), all_views=True)
        assert len(examples) == 4 * len(rec["decisions"])
        one_hot = examples.policy[(examples.policy == 1.0).any(axis=1)]
        assert len(one_hot) >= 4 * expert_decisions
    # without record_builtin only the searching seats leave decisions
    runner = PooledSearch(UniformEvaluator(), dataclasses.replace(PLAIN, determinizations=1, simulations=8), specs[:3],
                          n_games=3)
    runner.run()
    for rec in runner.finished():
        assert {d["player"] for d in rec["decisions"]} <= {0, 3}


def test_config_names_the_opponent_and_refuses_nonsense():
    cfg = load(None, ["selfplay.opponent=expert", "selfplay.opponent_share=0.25"], env={})
    assert builtin_player(cfg.selfplay.opponent).code == AGENT_EXPERT
    for bad, key in ((["selfplay.opponent=grandmaster", "selfplay.opponent_share=0.5"], "selfplay.opponent"),
                     (["selfplay.opponent=expert", "selfplay.opponent_share=1.0"], "selfplay.opponent_share"),
                     (["selfplay.opponent_share=0.5"], "selfplay.opponent")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            load(None, bad, env={})
    with pytest.raises(ValueError, match="choose one of"):
        builtin_player("grandmaster")
    assert set(PLAYERS) == {"random", "greedy", "expert"}
