"""The world-value model served by a real tritonserver beside BlobNet: published (validated),
answering the same values as in process, and every bad case refused with the reason — a graph
that is not a world-value model, one that answers NaN, wrong shapes, a model without the
world tensors. Then a search with world values at its leaves, through Triton."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from blobcore.encode import encode_world_of
from blobcore.rules import Round
from plumbing.model_repository import InvalidModelError, publish_version
from plumbing.netspec import MODEL_NAME, WORLD_MODEL_NAME
from selfplay_client.evaluator import UniformEvaluator
from selfplay_client.runner import PooledSearch
from selfplay_client.triton_evaluator import (TritonContractError, TritonNonFiniteError,
                                              TritonWorldValues)
from tests.triton_helpers import PROJECT_ROOT, export_tiny, make_repository, start_server
from trainer.world_model import WorldNet, WorldNetConfig, export_onnx


def world_onnx(path, seed=3, nan=False):
    torch.manual_seed(seed)
    net = WorldNet(WorldNetConfig(hidden=32, depth=1))
    if nan:
        with torch.no_grad():
            net.head.bias.fill_(float("nan"))
    export_onnx(net, path)
    return path


def worlds(n=12):
    out = []
    for seed in range(n):
        rnd = Round.from_seed(seed, 4, 5)
        for action in rnd.legal_actions()[:1] * (seed % 6):
            rnd.apply(rnd.legal_actions()[0])
        out.append(encode_world_of(rnd))
    return np.stack(out)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("worldserve")
    repo = make_repository(root, export_tiny(root / "tiny.onnx", seed=1))
    model = world_onnx(root / "world.onnx")
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "worlds", "publish", "--repo", str(repo),
                           "--model", str(model)], capture_output=True, text=True, timeout=120,
                          cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 1
    server = start_server(root, repo, instances=1)
    yield root, repo, model, server
    server.stop()


def test_triton_answers_what_the_model_answers_in_process(served):
    from selfplay_client.world_values import OrtWorldValues
    _, _, model, server = served
    batch = worlds()
    with TritonWorldValues(server.url) as remote:
        got = remote.world_values(batch)
        assert remote.last_model_version == 1
    np.testing.assert_allclose(got, OrtWorldValues(model).world_values(batch), atol=1e-5)
    assert got.shape == (len(batch), 8)


def test_wrong_shapes_are_refused_with_the_expected_shape(served):
    *_, server = served
    with TritonWorldValues(server.url) as remote:
        with pytest.raises(ValueError, match=r"shape \(n, 620\)"):
            remote.world_values(worlds()[:, :256])
        with pytest.raises(ValueError, match="float32"):
            remote.world_values(worlds().astype(np.float64))


def test_a_model_without_the_world_tensors_is_named(served):
    *_, server = served
    with TritonWorldValues(server.url, model_name=MODEL_NAME) as wrong:
        with pytest.raises(TritonContractError, match="world-value contract.*'world'"):
            wrong.world_values(worlds())


def test_publishing_refuses_a_graph_that_is_not_a_world_value_model(served, tmp_path):
    root, repo, _, _ = served
    with pytest.raises(InvalidModelError, match="inputs are"):
        publish_version(repo, root / "tiny.onnx", model_name=WORLD_MODEL_NAME)
    with pytest.raises(InvalidModelError, match="NaN or inf"):
        publish_version(repo, world_onnx(tmp_path / "nan.onnx", nan=True), model_name=WORLD_MODEL_NAME)
    done = subprocess.run([sys.executable, "-m", "blobzero.cli", "worlds", "publish", "--repo", str(repo),
                           "--model", str(root / "tiny.onnx")], capture_output=True, text=True,
                          timeout=120, cwd=PROJECT_ROOT)
    assert done.returncode == 2 and "expected ['world']" in done.stderr


def test_a_search_values_its_leaves_through_triton(served):
    from selfplay_client.world_values import WorldEvaluator
    from plumbing.config import load
    *_, server = served
    search = load().search.build(for_evaluation=True, preset="easy", rollout="world")
    with TritonWorldValues(server.url) as remote:
        runner = PooledSearch(WorldEvaluator(UniformEvaluator(), remote), search,
                              [(seed, 4, 5) for seed in range(3)], n_games=3, halves=1, stop_after=2)
        runner.run()
    records = runner.finished()
    assert len(records) == 3 and all(len(r["decisions"]) == 2 for r in records)


def test_a_version_answering_nan_is_refused_by_the_client(served, tmp_path):
    """A broken version that got past validation (copied in by hand) is never handed to the search."""
    _, repo, _, server = served
    target = repo / WORLD_MODEL_NAME / "2"
    target.mkdir()
    (target / "model.onnx").write_bytes(world_onnx(tmp_path / "nan.onnx", nan=True).read_bytes())
    with TritonWorldValues(server.url) as remote:
        deadline = time.monotonic() + 30
        while True:
            try:
                remote.world_values(worlds())
            except TritonNonFiniteError as exc:
                assert "version 2" in str(exc) and "NaN" in str(exc)
                break
            assert time.monotonic() < deadline, "Triton never loaded version 2"
            time.sleep(0.5)


def test_self_play_values_its_leaves_by_world_values_named_in_the_config(tmp_path):
    """`blobzero selfplay` against a real tritonserver, with search.rollout = "world" and
    worlds.model naming an ONNX file: its rounds finish and carry the version that answered."""
    from tests.triton_helpers import selfplay_records
    model = world_onnx(tmp_path / "world.onnx")
    records = selfplay_records(tmp_path, "config/blobzero.toml", 4, "search.preset=light",
                               "search.rollout=world", f"worlds.model={model}")
    assert len(records) >= 4
    assert all(r.model_version == 1 for r in records)


def test_self_play_blends_its_play_outs_with_triton_s_newest_world_model(tmp_path):
    """`blobzero selfplay` with search.world_share = 0.5 and worlds.model = "version" against a
    real tritonserver serving blobnet 1 and blobworld 1: its records carry the blend, and the
    leaves it keeps as labels are its play-outs' own (a round's score, never a blend)."""
    from tests.triton_helpers import selfplay_records
    records = selfplay_records(tmp_path, "config/blobzero.toml", 4, "search.preset=light",
                               "search.world_share=0.5", "worlds.model=version", "selfplay.leaf_worlds=8",
                               world_model=True)
    assert len(records) >= 4
    for r in records:
        assert r.search.world_share == 0.5 and r.search.rollout == "expert" and len(r.leaf_worlds) == 8
        for world in r.leaf_worlds:
            assert all(x == 0 or any(np.isclose(x, (10 + b) / 15) for b in range(6)) for x in world.scores)
