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


def test_every_named_part_runs_a_round():
    """Each registered root rule, leaf value and belief model plays whole rounds."""
    configs = [dict(root=r) for r in parts.ROOT_RULES] + \
              [dict(rollout=v) for v in parts.leaf_value_names()] + \
              [dict(beliefs=b, policy_inference=4 if b == "policy" else 0) for b in parts.BELIEFS]
    for changes in configs:
        config = SearchConfig(**{**PLAIN.to_dict(), "determinizations": 2, "simulations": 6, **changes})
        search = PooledSearch(UniformEvaluator(), config, list(zip(range(3), [4] * 3, [3] * 3)),
                              n_games=3, halves=1)
        search.run()
        records = search.finished()
        assert len(records) == 3 and all(r["complete"] for r in records), changes
        assert np.all([len(r["decisions"]) > 0 for r in records]), changes
