"""The commands that read models work on a run in a bucket, nothing copied but the models
(issue 26): ``blobzero arena``, ``blobzero game``, ``blobzero strength`` and the agent's
in-process models, with
``--set storage.url=s3://…`` against a real S3 API server on loopback (tests/s3_helpers.py).
They fetch the version they need through plumbing/storage.py into the bounded local cache
(``<TMPDIR>/blobzero-cache-<uid>``); the strength results land in the bucket beside the checkpoints."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from plumbing.config import load
from plumbing.model_repository import ModelVersions, publish_version
from plumbing.storage import FileCache, open_store
from s3_helpers import publish_as_the_trainer
from test_object_storage import s3  # noqa: F401  (the module-scoped S3 server with bucket "blobzero")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(s3, tmp_path_factory):
    """A run in the bucket as the trainer leaves it: versions 1 and 2 in the model repository,
    both archived with their manifests."""
    tmp = tmp_path_factory.mktemp("run")
    url = f"s3://blobzero/run-{time.time_ns()}"
    for version in (1, 2):
        publish_as_the_trainer(url, version, tmp)
    return url, tmp


def _cli(args, cwd, timeout=300):
    """A command run in ``cwd`` with its temporary directory (and so its model cache) in ``cwd/tmp``."""
    (cwd / "tmp").mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "blobzero.cli", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(cwd / "tmp")})


def _cached(cwd: Path) -> list[str]:
    cache = cwd / "tmp" / f"blobzero-cache-{os.getuid()}"
    return sorted(p.name for p in cache.iterdir() if not p.name.startswith("."))


def test_arena_and_game_play_a_version_read_from_the_bucket(run, tmp_path):
    url, _ = run
    storage = ["--set", f"storage.url={url}"]
    res = _cli(["arena", "--a", "latest", "--b", "random", "--rounds", "6", "--search", "light",
                "--json", *storage], tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["a"] == "v2" and report["deals"] == 6
    # the archive's copy (kept; the repository's newest few are pruned as training goes on)
    assert _cached(tmp_path) and all(n.endswith("-v000002.onnx") for n in _cached(tmp_path))
    res = _cli(["game", "--seats", "v1,greedy,greedy", "--start-cards", "2", "--search", "light",
                "--json", *storage], tmp_path)
    assert res.returncode == 0, res.stderr
    game = json.loads(res.stdout)
    assert game["seats"] == ["v1", "greedy", "greedy"] and game["n_games"] == 1
    res = _cli(["arena", "--a", "v9", *storage], tmp_path)
    assert res.returncode == 2
    assert f"model version 9 is neither in {url}/model_repository/blobnet nor archived in " \
           f"{url}/checkpoints/versions" in res.stderr
    # nothing of the run was copied besides the cached model files: no run directory
    assert [p.name for p in tmp_path.iterdir()] == ["tmp"]
    assert [p.name for p in (tmp_path / "tmp").iterdir()
            if not p.name.startswith(".")] == [f"blobzero-cache-{os.getuid()}"]
    assert len(_cached(tmp_path)) == 2                    # v2 for the arena, v1 for the game


def test_strength_measures_archived_versions_from_the_bucket_and_writes_its_results_there(run, tmp_path):
    url, _ = run
    res = _cli(["strength", "--versions", "1,2", "--opponents", "random", "--deals", "4",
                "--set", f"storage.url={url}", "--set", "arena.search_preset=light",
                "--plot", f"{url}/learning_curve.png"], tmp_path)
    assert res.returncode == 0, res.stderr
    assert "v1 vs random" in res.stdout and "v2 vs random" in res.stdout
    results = open_store(url)
    points = json.loads(results.get("strength.json"))["points"]
    assert [(p["version"], p["opponent"], p["deals"]) for p in points] == [(1, "random", 4),
                                                                           (2, "random", 4)]
    assert points[1]["minutes"] == 1.0 and points[1]["rounds"] == 128
    assert results.get("learning_curve.png")[:8] == b"\x89PNG\r\n\x1a\n"
    res = _cli(["strength", "--versions", "7", "--set", f"storage.url={url}"], tmp_path)
    assert res.returncode == 2 and "[7] are not archived" in res.stderr


def test_the_agents_models_come_from_the_bucket_and_an_outage_is_unavailable(run, s3, tmp_path):
    from blobzero.agent.engine import EngineUnavailable
    from blobzero.agent.models import OnnxModels
    url, _ = run
    cfg = load(None, [f"storage.url={url}"], env={})
    models = OnnxModels(cfg)
    assert models.models.cache.directory == FileCache.default().directory
    assert "model_repository/blobnet" in models.describe()
    rng = np.random.default_rng(0)
    states = rng.random((3, 256), dtype=np.float32)
    masks = np.zeros((3, 52), np.float32)
    masks[:, :5] = 1
    for spec, label in (("latest", "2"), ("v1", "1")):
        policy, value, answered = models.evaluate(models.key(spec), states, masks)
        assert answered == label and policy.shape == (3, 52) and value.shape[0] == 3
        assert np.allclose(policy.sum(axis=1), 1, atol=1e-4) and (policy[:, 5:] == 0).all()
    with pytest.raises(ValueError, match="model version 5 is neither in"):
        models.key("v5")
    s3.stop()
    try:
        with pytest.raises(EngineUnavailable, match="cannot list the model versions"):
            models.key("latest")         # never a silent fallback to uniform priors
    finally:
        s3.start()
    models.close()


def test_the_file_cache_is_bounded_and_refetches_a_replaced_object(s3, tmp_path):
    store = open_store(f"s3://blobzero/cache-{time.time_ns()}")
    cache = FileCache(tmp_path / "cache", max_bytes=2500)
    for name in ("a", "b", "c"):
        store.put(f"{name}.bin", name.encode() * 1000)
    first = cache.fetch(store, "a.bin")
    assert first.read_bytes() == b"a" * 1000
    assert cache.fetch(store, "a.bin") == first                  # a hit: not downloaded again
    time.sleep(0.01)
    cache.fetch(store, "b.bin")
    time.sleep(0.01)
    third = cache.fetch(store, "c.bin")                           # 3000 bytes > 2500: a goes
    assert not first.exists() and third.exists()
    assert sum(p.stat().st_size for p in (tmp_path / "cache").iterdir()) <= 2500
    time.sleep(1.1)                                               # S3 times have 1 s resolution
    store.put("c.bin", b"C" * 1000)                               # replaced under the same key
    again = cache.fetch(store, "c.bin")
    assert again != third and again.read_bytes() == b"C" * 1000
    stale = tmp_path / "cache" / ".leftover.tmp"                  # a killed download's temporary
    stale.write_bytes(b"partial")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    cache.evict()
    assert not stale.exists()
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        cache.fetch(store, "missing.bin")


def test_model_versions_read_a_directory_in_place(tmp_path):
    """Locally nothing is copied: the repository's own file is what ONNX Runtime loads."""
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "m.onnx", seed=3)
    publish_version(tmp_path / "repo", onnx)
    models = ModelVersions(tmp_path / "repo", tmp_path / "ckpt" / "versions",
                           FileCache(tmp_path / "cache"))
    assert models.latest() == 1
    assert models.path(1) == tmp_path / "repo" / "blobnet" / "1" / "model.onnx"
    assert not (tmp_path / "cache").exists()


def test_model_versions_read_the_archive_which_outlives_the_repository(tmp_path):
    """The repository keeps only the newest few versions: a reader that loads a version again
    minutes later (the strength tracker, once per opponent) must not find it pruned."""
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "m.onnx", seed=3)
    archive = tmp_path / "ckpt" / "versions"
    archive.mkdir(parents=True)
    for n in (1, 2, 3):
        publish_version(tmp_path / "repo", onnx, keep_last=1)
        (archive / f"v{n:06d}.onnx").write_bytes(onnx.read_bytes())
    models = ModelVersions(tmp_path / "repo", archive, FileCache(tmp_path / "cache"))
    assert models.served() == [3]
    assert models.path(1) == archive / "v000001.onnx" and models.path(3) == archive / "v000003.onnx"
