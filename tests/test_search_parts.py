"""The search's parts plug in as the docs say: one new Cython file and one line in
``blobcore/search/parts.py`` (docs/search.md, "Adding a part"). The example root rule is
taken from the docs themselves, compiled against the project's headers and run in a search."""
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from blobcore.search import parts
from blobcore.search_config import PLAIN, SearchConfig
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch, round_specs

ROOT = Path(__file__).resolve().parents[1]


def _docs_example() -> str:
    text = (ROOT / "docs" / "search.md").read_text()
    block = re.search(r"```cython\n(.*?)```", text, re.DOTALL)
    assert block, "docs/search.md lost its example part"
    return textwrap.dedent(block[1])


@pytest.fixture(scope="module")
def greedy_q_module(tmp_path_factory):
    """The docs' example, built as a top-level extension module in a temporary directory."""
    where = tmp_path_factory.mktemp("part")
    (where / "root_greedy_q.pyx").write_text(_docs_example())
    (where / "setup.py").write_text(textwrap.dedent(f"""
        from Cython.Build import cythonize
        from setuptools import Extension, setup
        setup(ext_modules=cythonize(
            [Extension("root_greedy_q", ["root_greedy_q.pyx"])],
            include_path=[{str(ROOT)!r}], language_level=3, quiet=True))
    """))
    build = subprocess.run([sys.executable, "setup.py", "--quiet", "build_ext", "--inplace"],
                           cwd=where, capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    sys.path.insert(0, str(where))
    yield "root_greedy_q"
    sys.path.remove(str(where))


def test_a_new_root_rule_is_one_file_and_one_line(greedy_q_module, monkeypatch):
    with pytest.raises(ValueError, match="root must be one of puct, gumbel, got 'greedy_q'"):
        SearchConfig(root="greedy_q")
    monkeypatch.setitem(parts.ROOT_RULES, "greedy_q", greedy_q_module)      # the one line
    config = SearchConfig(**{**PLAIN.to_dict(), "root": "greedy_q", "add_noise": False})
    search = PooledSearch(UniformEvaluator(), config, list(zip(range(6), [4] * 6, [5] * 6)),
                          n_games=3, halves=1)
    search.run()
    records = search.finished()
    assert len(records) == 6 and all(r["complete"] for r in records)
    moves = 0
    for record in records:
        for decision in record["decisions"]:
            q = decision["q"]
            played = record["actions"][decision["ply"]]
            assert q[played] == max(q.values())                 # the rule's move: the best mean
            assert decision["policy"] is None                   # its target: the visit counts
            moves += 1
    assert moves > 20


def test_a_part_of_another_kind_is_refused(monkeypatch):
    """A module named in the wrong table hands over the wrong struct: a clear error, no crash."""
    monkeypatch.setitem(parts.ROOT_RULES, "uniform", parts.BELIEFS["uniform"])
    config = SearchConfig(**{**PLAIN.to_dict(), "root": "uniform"})
    from blobcore.search.pool import SearchPool
    with pytest.raises(ValueError, match="blobcore.search.RootRule"):
        SearchPool(1, config, [(1, 4, 5)])


class RuleBeliefs:
    """A uniform evaluator that also answers a belief output with a fixed rule: card c is held
    by the ((c mod 3) + 1)-th seat after the observer with probability 0.97."""

    def evaluate(self, states, masks):
        policy, value = UniformEvaluator().evaluate(states, masks)
        beliefs = np.full((len(states), 52, 8), 0.03 / 7, np.float32)
        for card in range(52):
            beliefs[:, card, card % 3 + 1] = 0.97
        return policy, value, beliefs


class RuleWorlds:
    """A uniform evaluator that also answers world values with a fixed rule: each relative
    seat's share of the four aces (card suit * 13 + 12) in the whole deal."""
    answers_worlds = True

    def evaluate(self, states, masks, worlds=None):
        policy, value = UniformEvaluator().evaluate(states, masks)
        aces = [13 * suit + 12 for suit in range(4)]
        hands = np.concatenate([worlds[:, None, :52], worlds[:, 256:].reshape(len(worlds), 7, 52)], axis=1)
        held = hands[:, :, aces].sum(-1)
        return policy, value, None, (held / 4.0).astype(np.float32)


def test_every_named_part_runs_a_round():
    """Each registered root rule, leaf value and belief model plays whole rounds."""
    configs = [dict(root=r) for r in parts.ROOT_RULES] + \
              [dict(rollout=v) for v in parts.leaf_value_names()] + \
              [dict(beliefs=b, policy_inference=4 if b == "policy" else 0) for b in parts.BELIEFS]
    for changes in configs:
        config = SearchConfig(**{**PLAIN.to_dict(), "determinizations": 2, "simulations": 6, **changes})
        evaluator = (RuleBeliefs() if changes.get("beliefs") == "learned" else
                     RuleWorlds() if changes.get("rollout") == "world" else UniformEvaluator())
        search = PooledSearch(evaluator, config, list(zip(range(3), [4] * 3, [3] * 3)),
                              n_games=3, halves=1)
        search.run()
        records = search.finished()
        assert len(records) == 3 and all(r["complete"] for r in records), changes
        assert np.all([len(r["decisions"]) > 0 for r in records]), changes


def _root_worlds(config, evaluator, seeds) -> list:
    """(the true round, every determinization the first decision of each round was searched in)."""
    from blobcore.search.pool import SearchPool
    out = []
    for seed in seeds:
        pool = SearchPool(1, config, [(seed, 4, 5)], stop_after=1)
        worlds = []
        while True:
            states, masks = pool.collect()
            if len(states) == 0:
                break
            root = pool.determinization_root(0)
            if root is not None:
                worlds.append(root)
            pool.apply(*evaluator.evaluate(np.array(states), np.array(masks)))
        (record,) = pool.pop_finished()
        out.append((record, worlds))
    return out


def test_learned_beliefs_draw_the_deals_the_model_believes():
    """Told that card c sits with the ((c mod 3) + 1)-th seat after the searcher, the learned
    beliefs put the other seats' cards there far more often than uniform deals do; every deal is
    consistent with what the searcher knows."""
    # the mover's view: a leaf's row depends on the deal, so every determinization asks the network
    base = {**PLAIN.to_dict(), "determinizations": 16, "simulations": 1, "inference_candidates": 32,
            "perspective": "mover",
            "add_noise": False, "temperature": 0.0}
    share = {}
    for beliefs in ("uniform", "learned"):
        config = SearchConfig(**{**base, "beliefs": beliefs})
        hits = total = 0
        for record, worlds in _root_worlds(config, RuleBeliefs(), range(20)):
            viewer = record["decisions"][0]["player"]
            assert len(worlds) >= 8
            for world in worlds:
                hands = world.hands
                assert sorted(hands[viewer]) == sorted(record["hands"][viewer])   # its own hand
                for seat in range(4):
                    if seat == viewer:
                        continue
                    assert len(hands[seat]) == 5
                    for card in hands[seat]:
                        total += 1
                        hits += (seat - viewer) % 4 == card % 3 + 1
        share[beliefs] = hits / total
    assert share["uniform"] == pytest.approx(1 / 3, abs=0.05)
    assert share["learned"] > share["uniform"] + 0.2, share


def test_learned_beliefs_need_an_evaluator_that_answers_them():
    from blobcore.search.pool import SearchPool
    config = SearchConfig(**{**PLAIN.to_dict(), "beliefs": "learned", "determinizations": 2, "simulations": 4})
    pool = SearchPool(2, config, [(1, 4, 5)])
    states, masks = pool.collect()
    with pytest.raises(ValueError, match="needs an evaluator that answers beliefs"):
        pool.apply(*UniformEvaluator().evaluate(np.array(states), np.array(masks)))
    with pytest.raises(ValueError, match=r"beliefs must have shape \(\d+, 52, 8\)"):
        pool.apply(*UniformEvaluator().evaluate(np.array(states), np.array(masks)),
                   np.zeros((len(states), 52, 7), np.float32))
