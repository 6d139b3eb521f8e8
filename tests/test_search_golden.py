"""Golden search test: on fixed deals and seeds, the searches below choose the same moves and
record the same policy targets, visit counts, values and q as when the golden file was written
(before the search was split into parts, issue 26). A change to the search's behaviour shows
up here as a diff of ``tests/golden/search.json``.

Regenerate (only when a behaviour change is intended, and say so in the commit):
    BLOBZERO_REGOLDEN=1 .venv/bin/python -m pytest -q tests/test_search_golden.py
"""
import itertools
import json
import os
from pathlib import Path

import pytest

from blobcore.search_config import SearchConfig
from selfplay_client.runner import PooledSearch, round_specs
from tests.test_search import RowHashEvaluator

GOLDEN = Path(__file__).parent / "golden" / "search.json"

#: The plain search (PUCT root, the network's value, uniform determinization) and the
#: product's default (Gumbel root, expert play-outs, hidden hands weighted by the bids), both
#: spelled out in full so that a change of defaults cannot change what is compared (beliefs
#: are left at "bids", which with one candidate is the uniform draw, as before the split).
PLAIN = dict(determinizations=3, simulations=30, c_puct=1.25, dirichlet_alpha=0.5,
             dirichlet_eps=0.25, add_noise=True, temperature=1.0, temperature_moves=6,
             leaves_per_game=1, skip_forced=True, perspective="searcher", rollout="none",
             rollout_weight=0.5, bid_rollout_weight=-1.0, rollout_resample=True,
             inference_candidates=1, inference_temperature=2.0, policy_inference=0,
             policy_inference_temperature=1.0, root="puct", gumbel_actions=16,
             gumbel_c_visit=50.0, gumbel_c_scale=1.0, gumbel_eval_c_visit=-1.0)
DEFAULT = dict(PLAIN, root="gumbel", rollout="expert", rollout_weight=1.0,
               inference_candidates=8, inference_temperature=1.0)

CASES = {
    "plain-selfplay": (PLAIN, False),
    "plain-evaluation": (PLAIN, True),
    "default-selfplay": (DEFAULT, False),
    "default-evaluation": (DEFAULT, True),
    # the other parts, once each: virtual loss, mover's view, greedy play-outs mixed with the
    # value, no resampling, the bid weight, policy-based inference
    "parts-mix": (dict(PLAIN, leaves_per_game=4, perspective="mover", rollout="greedy",
                       rollout_weight=0.5, bid_rollout_weight=0.0, rollout_resample=False,
                       inference_candidates=4), False),
    "policy-inference": (dict(DEFAULT, beliefs="policy", policy_inference=8, simulations=12), True),
}


def _search_to_config(settings: dict, evaluation: bool) -> SearchConfig:
    config = SearchConfig(**settings)
    return config.for_evaluation() if evaluation else config


def _round_summary(record: dict) -> dict:
    def floats(values):
        return [float(v) for v in values]
    return {
        "seed": record["seed"],
        "hands": record["hands"],
        "actions": record["actions"],
        "scores": record["scores"],
        "decisions": [{
            "ply": d["ply"], "player": d["player"],
            "visits": {str(a): n for a, n in sorted(d["visits"].items())},
            "q": {str(a): float(q) for a, q in sorted(d["q"].items())},
            "root_value": floats(d["root_value"]),
            "policy": (None if d["policy"] is None
                       else {str(a): float(p) for a, p in sorted(d["policy"].items())}),
        } for d in record["decisions"]],
    }


def play(case: str) -> list[dict]:
    settings, evaluation = CASES[case]
    config = _search_to_config(settings, evaluation)
    specs = [*itertools.islice(round_specs(1234, 4, 5), 3), *itertools.islice(round_specs(99, 3, 4), 2)]
    search = PooledSearch(RowHashEvaluator(), config, specs, n_games=3, halves=1)
    search.run()
    records = sorted(search.finished(), key=lambda r: r["seed"])
    assert len(records) == len(specs) and all(r["complete"] for r in records)
    return [_round_summary(r) for r in records]


def test_golden_file_covers_every_case():
    if os.environ.get("BLOBZERO_REGOLDEN"):
        GOLDEN.write_text(json.dumps({case: play(case) for case in CASES}, indent=1) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_search_matches_golden(case):
    golden = json.loads(GOLDEN.read_text())[case]
    got = json.loads(json.dumps(play(case)))
    assert len(got) == len(golden)
    for mine, theirs in zip(got, golden):
        assert mine["actions"] == theirs["actions"], f"{case}: moves differ in round {mine['seed']}"
        assert mine == theirs, f"{case}: records differ in round {mine['seed']}"
