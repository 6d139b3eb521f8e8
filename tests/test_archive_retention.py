"""Retention of the trainer's archive of published versions (issue 28: "checkpoint retention on
the claim as in the bucket"): ``storage.archive_keep`` / ``archive_every`` prune
``<checkpoint_dir>/versions`` after each publish, with the same code on a directory (the
checkpoints volume or claim) and in a bucket (a real S3 server on loopback). Real files, a real
trainer, nothing mocked; the CheckpointsVolumeFilling alert's gauges come from the trainer."""
from __future__ import annotations

import json
import time

import pytest

from blobzero.strength import manifests
from plumbing.archive import ArchivePolicy, archived, prune, retain
from plumbing.config import ConfigError, load
from plumbing.model_repository import archive_key
from plumbing.storage import LocalStore, open_store
from test_object_storage import s3  # noqa: F401  (the module-scoped fixture: a real S3 server)
from test_training import protos, trainer_setup  # noqa: F401  (protos: the module-scoped fixture)


def archive_with(store, versions) -> None:
    """What the trainer leaves for each version: an ONNX file (bytes only: pruning never opens
    it) and its manifest."""
    for v in versions:
        store.put(archive_key(v), b"onnx %d" % v)
        store.put(archive_key(v, ".json"), json.dumps({"version": v, "step": 10 * v}).encode())


@pytest.fixture(params=["directory", "bucket"])
def archive(request, tmp_path, s3):
    if request.param == "directory":
        return LocalStore(tmp_path / "checkpoints" / "versions")
    return open_store(f"s3://blobzero/run-{time.time_ns()}/checkpoints/versions")


def test_the_policy_keeps_the_newest_the_milestones_and_version_one():
    policy = ArchivePolicy(keep=5, every=10)
    assert [v for v in range(1, 31) if policy.kept(v, 30)] == [1, 10, 20, 26, 27, 28, 29, 30]
    assert all(ArchivePolicy().kept(v, 30) for v in range(1, 31))              # 0: every version
    assert [v for v in range(1, 31) if ArchivePolicy(keep=3).kept(v, 30)] == [1, 28, 29, 30]
    for bad in ("storage.archive_keep=1", "storage.archive_keep=-2", "storage.archive_every=-1"):
        with pytest.raises(ConfigError, match=bad.split("=")[0]):
            load(None, [bad], env={})
    assert load(None, [], env={}).storage.archive_keep == 0                     # the laptop keeps all


def test_pruning_deletes_files_and_manifests_the_same_way_in_a_directory_and_a_bucket(archive):
    archive_with(archive, range(1, 31))
    archive.put("notes.txt", b"not ours")
    archive.delete(archive_key(12))                 # a crash between the two deletes: the manifest
    assert prune(archive, ArchivePolicy(keep=0)) == []                          # keep everything
    assert len(archived(archive)) == 30
    assert prune(archive, ArchivePolicy(keep=5, every=10)) == [v for v in range(2, 26) if v not in (10, 20)]
    left = sorted(e.key for e in archive.list())
    assert left == ["notes.txt"] + sorted(archive_key(v, s) for v in (1, 10, 20, 26, 27, 28, 29, 30)
                                          for s in (".onnx", ".json"))
    assert set(manifests(archive)) == {1, 10, 20, 26, 27, 28, 29, 30}
    archive_with(archive, [31])                                                 # the next publish
    assert prune(archive, ArchivePolicy(keep=5, every=10)) == [26]
    assert prune(archive, ArchivePolicy(keep=5, every=10)) == []                # idempotent


def test_an_archive_that_cannot_be_pruned_is_logged_and_pruned_at_the_next_publish(s3, caplog):
    from plumbing.config import StorageSection
    url = f"s3://blobzero/down-{time.time_ns()}/checkpoints"
    checkpoints = open_store(url)
    archive_with(checkpoints.child("versions"), range(1, 6))
    s3.stop()                                                   # the endpoint is down
    try:
        with caplog.at_level("WARNING", logger="blobzero.trainer"):
            assert retain(checkpoints, StorageSection(archive_keep=2)) == []
        assert "cannot prune the archive" in caplog.text and f"{url}/versions" in caplog.text
    finally:
        s3.start()
    assert retain(checkpoints, StorageSection(archive_keep=2)) == [2, 3]
    assert sorted(archived(checkpoints.child("versions"))) == [1, 4, 5]


def _run_trainer(cfg, steps: int):
    from trainer.service import Trainer
    trainer = Trainer(cfg)
    assert trainer.run(steps=steps) == 0
    return trainer


def test_a_trainer_keeps_its_archive_on_the_volume_within_the_keep_settings(tmp_path, protos):
    cfg = trainer_setup(tmp_path, protos[:30], "trainer.steps_per_publish=5", "storage.archive_keep=2")
    trainer = _run_trainer(cfg, 25)
    assert trainer.progress.version == 6                            # v1 initial + 5 publishes
    assert sorted(p.name for p in (tmp_path / "ckpt" / "versions").iterdir()) == \
        sorted(archive_key(v, s) for v in (1, 5, 6) for s in (".onnx", ".world.onnx", ".json"))
    assert set(manifests(tmp_path / "ckpt" / "versions")) == {1, 5, 6}
    text = _metrics_text(trainer)
    free = _sample(text, "blobzero_trainer_checkpoints_volume_free_bytes")
    assert 0 < free <= _sample(text, "blobzero_trainer_checkpoints_volume_size_bytes")
    resumed = _run_trainer(cfg, 35)                                 # a restart keeps pruning
    assert resumed.progress.version == 8
    assert set(manifests(tmp_path / "ckpt" / "versions")) == {1, 7, 8}


def test_a_trainer_on_a_bucket_obeys_the_same_keep_settings(s3, tmp_path, protos):
    from plumbing.shards import ShardWriter
    url = f"s3://blobzero/train-{time.time_ns()}"
    cfg = load(None, [f"storage.url={url}", "network.preset=tiny", "metrics.trainer_port=0",
                      "trainer.batch_size=32", "trainer.min_positions=50", "trainer.window_min=100",
                      "trainer.steps_per_publish=5", "trainer.checkpoint_every=5", "trainer.sample_reuse=100",
                      "storage.archive_keep=2"], env={})
    writer = ShardWriter(open_store(cfg.storage.games_dir), "sp-0", rounds_per_shard=10)
    for rec in protos[:30]:
        writer.add(rec)
    writer.flush()
    assert _run_trainer(cfg, 25).progress.version == 6
    versions = open_store(f"{url}/checkpoints/versions")
    assert sorted(e.key for e in versions.list()) == sorted(archive_key(v, s) for v in (1, 5, 6)
                                                            for s in (".onnx", ".world.onnx", ".json"))
    assert open_store(f"{url}/checkpoints").exists("trainer.pt")


def _metrics_text(trainer) -> str:
    from prometheus_client import generate_latest
    return generate_latest(trainer.metrics.registry).decode()


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")
