"""Games, models and checkpoints in S3-compatible object storage (issue 19), against a real S3
API server on loopback (tests/s3_helpers.py): the storage interface on both kinds of location,
start-up refusals naming the config key, the trainer ingesting from a bucket incrementally and
publishing to it, retention, partial uploads never ingested, and the endpoint going down."""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from plumbing.config import ConfigError, load
from plumbing.shards import KEY_RE, ShardReader, ShardWriter, encode_shard, shard_key
from plumbing.storage import (LocalStore, S3Store, StorageUnavailable, join, open_store,
                              triton_repository_url)
from s3_helpers import S3Server, s3_environment
from test_training import protos  # noqa: F401  (the module-scoped fixture: real self-play records)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT_CONFIG = Path(ROOT) / "model_repository" / "blobnet" / "config.pbtxt"


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    with s3_environment(server):
        server.bucket("blobzero")
        yield server
    server.stop()


def _prefix(name: str) -> str:
    return f"s3://blobzero/{name}-{time.time_ns()}"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, s3):
    return LocalStore(tmp_path / "store") if request.param == "local" else open_store(_prefix("store"))


def test_the_store_interface_is_the_same_on_a_directory_and_a_bucket(store):
    store.put("a/00000000-v000001.shard", b"one")
    store.put("a/00000001-v000001.shard", b"two")
    store.put("b/00000000-v000002.shard", b"three")
    store.put("top.json", b"{}")
    assert store.get("a/00000001-v000001.shard") == b"two"
    assert [e.key for e in store.list()] == ["a/00000000-v000001.shard", "a/00000001-v000001.shard",
                                            "b/00000000-v000002.shard", "top.json"]
    assert [e.key for e in store.list("a/", start_after="a/00000000-v000001.shard")] == \
        ["a/00000001-v000001.shard"]
    assert store.children() == ["a", "b"]
    assert [e.size for e in store.list("b/")] == [5]
    store.put("top.json", b'{"v": 2}')                       # replaced whole
    assert store.get("top.json") == b'{"v": 2}'
    store.delete("a/00000000-v000001.shard")
    store.delete("a/00000000-v000001.shard")                 # already gone: fine
    assert not store.exists("a/00000000-v000001.shard") and store.exists("top.json")
    with pytest.raises(FileNotFoundError):
        store.get("missing")
    store.check("storage.url")


def test_directory_operations_lock_and_fetch_are_the_same_on_both_kinds(store, tmp_path):
    from plumbing.storage import FileCache
    store.put_dir("blobnet/1", {"model.onnx": b"onnx", "extra.txt": b"x"})
    assert [e.key for e in store.list("blobnet/")] == ["blobnet/1/extra.txt", "blobnet/1/model.onnx"]
    assert store.children("blobnet") == ["1"] and store.stat("blobnet/1/model.onnx").size == 4
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        store.stat("nothing-here")
    aside = store.sibling(f".{store.name}.aside")
    store.move("blobnet/1", aside, "v1")                      # a directory, whole
    assert store.list("blobnet/") == [] and aside.get("v1/model.onnx") == b"onnx"
    store.put("q/a.shard", b"shard")
    store.move("q/a.shard", store, "quarantine/q/a.shard")    # one object
    assert [e.key for e in store.list("q/")] == [] and store.get("quarantine/q/a.shard") == b"shard"
    aside.remove_dir("v1")
    assert aside.list() == []
    store.put("m.onnx", b"model")
    before = store.stat("m.onnx").mtime
    time.sleep(1.1)                                            # S3 times have 1 s resolution
    store.touch("m.onnx")
    assert store.stat("m.onnx").mtime > before and store.get("m.onnx") == b"model"
    local = store.fetch("m.onnx", FileCache(tmp_path / "cache"))
    assert local.read_bytes() == b"model"
    assert (local == store.path("m.onnx")) if store.local else (local.parent == tmp_path / "cache")
    with store.local_file("m.onnx") as path:
        assert path.read_bytes() == b"model"
    first = store.lock(".clients/a.lock", wait=False)
    second = store.lock(".clients/a.lock", wait=False)
    # a directory: one live holder at a time; a bucket has no locks (ids unique by construction)
    assert (second is None) if store.local else (second is not None)
    first.release()
    assert store.lock(".clients/a.lock", wait=False) is not None
    assert ".clients/a.lock" not in {e.key for e in store.list()}   # hidden from readers


def test_the_model_repository_works_the_same_in_a_bucket(s3, tmp_path):
    from plumbing.model_repository import (ModelRepositoryError, check_servable, list_versions,
                                           publish_version, set_aside_unusable, version_mtime,
                                           write_local_config)
    from trainer.export import export_fresh
    onnx = export_fresh("tiny", tmp_path / "m.onnx", seed=1)
    repo = _prefix("repo")
    assert [publish_version(repo, onnx, keep_last=2) for _ in range(3)] == [1, 2, 3]
    models = open_store(join(repo, "blobnet"))
    assert list_versions(models) == [2, 3] and check_servable(repo) == [2, 3]
    assert version_mtime(models.url, 3) > time.time() - 60
    models.put("4/model.onnx", onnx.read_bytes()[:1000])     # a writer that bypassed publishing
    with pytest.raises(ModelRepositoryError, match="malformed: newest version 4"):
        check_servable(repo)
    moved = set_aside_unusable(repo)
    assert [v for v, _ in moved] == [4] and list_versions(models) == [2, 3]
    rejected = open_store(repo.rpartition("/")[0] + f"/.{repo.rpartition('/')[2]}.rejected")
    assert [e.key.split("/")[1] for e in rejected.list()] == ["model.onnx"]
    write_local_config(models.url)
    models.put("config.pbtxt", (ROOT_CONFIG.read_text()).encode())
    with pytest.raises(ModelRepositoryError, match="'onnxruntime'"):
        write_local_config(models.url)


def test_storage_url_places_everything_under_one_location(tmp_path):
    cfg = load(None, ["storage.url=s3://bucket/run1"], env={})
    assert (cfg.storage.games_dir, cfg.storage.model_repository, cfg.storage.checkpoint_dir) == (
        "s3://bucket/run1/games", "s3://bucket/run1/model_repository", "s3://bucket/run1/checkpoints")
    local = load(None, [f"storage.url=file://{tmp_path}"], env={})
    assert local.storage.games_dir == str(tmp_path / "games")
    default = load(None, [], env={})                              # make run: unchanged
    assert (default.storage.url, default.storage.games_dir) == ("", "var/games")
    with pytest.raises(ConfigError, match="storage.url"):
        load(None, ["storage.url=gs://bucket/x"], env={})
    with pytest.raises(ConfigError, match="storage.url.*bucket"):
        load(None, ["storage.url=s3:///x"], env={})
    assert triton_repository_url("s3://b/p/model_repository", "http://127.0.0.1:9000") == \
        "s3://127.0.0.1:9000/b/p/model_repository"
    assert triton_repository_url("s3://b/p", "https://minio.example:443") == "s3://https://minio.example:443/b/p"
    assert triton_repository_url("s3://b/p", "") == "s3://b/p"
    assert join("s3://b/p", "games") == "s3://b/p/games"


def _cli(args, env=None, timeout=120):
    return subprocess.run([sys.executable, "-m", "blobzero.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=ROOT)


def test_a_missing_bucket_or_an_unreachable_endpoint_is_refused_at_start_naming_the_key(s3, tmp_path):
    result = _cli(["train", "--init-only", "--set", "storage.url=s3://no-such-bucket/run"])
    assert result.returncode == 2
    assert "config key 'storage.checkpoint_dir'" in result.stderr
    assert "bucket 'no-such-bucket' does not exist" in result.stderr
    result = _cli(["selfplay", "--rounds", "1", "--set", "storage.url=s3://no-such-bucket/run",
                   "--set", "metrics.selfplay_port=0"])
    assert result.returncode == 2 and "config key 'storage.games_dir'" in result.stderr
    result = _cli(["train", "--init-only", "--set", "storage.url=s3://blobzero/run"],
                  env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    assert result.returncode == 2
    assert "cannot reach the storage endpoint http://127.0.0.1:9 (AWS_ENDPOINT_URL)" in result.stderr


def test_wrong_credentials_are_refused_at_start_naming_the_key_and_the_variables(s3):
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    iam = s3.client().__class__  # noqa: F841 (the IAM client below uses the same endpoint)
    import boto3
    admin = boto3.client("iam", endpoint_url=s3.endpoint, aws_access_key_id="x",
                         aws_secret_access_key="y", region_name="us-east-1")
    user = f"trainer-{time.time_ns()}"
    admin.create_user(UserName=user)
    admin.put_user_policy(UserName=user, PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
    key = admin.create_access_key(UserName=user)["AccessKey"]
    good = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    saved = settings.INITIAL_NO_AUTH_ACTION_COUNT
    settings.INITIAL_NO_AUTH_ACTION_COUNT, ActionAuthenticatorMixin.request_count = 0, 0
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k, v in good.items():
                mp.setenv(k, v)
            open_store("s3://blobzero/creds").check("storage.url")         # the right key works
            mp.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
            with pytest.raises(ConfigError) as refused:
                open_store("s3://blobzero/creds").check("storage.games_dir")
        message = str(refused.value)
        assert "config key 'storage.games_dir'" in message
        assert "refused the credentials" in message and "AWS_SECRET_ACCESS_KEY" in message
        result = _cli(["selfplay", "--rounds", "1", "--set", "storage.url=s3://blobzero/creds",
                       "--set", "metrics.selfplay_port=0"],
                      env={**good, "AWS_ACCESS_KEY_ID": "AKIANOTAKEY"})
        assert result.returncode == 2
        assert "config key 'storage.games_dir'" in result.stderr and "AWS_ACCESS_KEY_ID" in result.stderr
    finally:
        settings.INITIAL_NO_AUTH_ACTION_COUNT = saved


def _trainer_cfg(url, **extra):
    overrides = [f"storage.url={url}", "network.preset=tiny", "metrics.trainer_port=0",
                 "trainer.batch_size=32", "trainer.min_positions=50", "trainer.window_min=100",
                 "trainer.steps_per_publish=10", "trainer.checkpoint_every=5",
                 "trainer.sample_reuse=100", *[f"{k}={v}" for k, v in extra.items()]]
    return load(None, overrides, env={})


def test_the_trainer_ingests_from_a_bucket_publishes_to_it_and_resumes(s3, protos):
    from trainer.service import Trainer
    url = _prefix("train")
    cfg = _trainer_cfg(url)
    games = open_store(cfg.storage.games_dir)
    writer = ShardWriter(games, "sp-0", rounds_per_shard=10)
    for rec in protos[:30]:
        writer.add(rec)
    writer.flush()
    assert [e.key for e in games.list()] == [shard_key(1, "sp-0", i) for i in range(3)]
    assert all(KEY_RE.match(e.key) for e in games.list())
    trainer = Trainer(cfg)
    assert trainer.run(steps=25) == 0
    assert trainer.progress.step == 25 and trainer.progress.version == 3   # v1 initial + 2 publishes
    repo = open_store(cfg.storage.model_repository)
    # blobnet N and the world-value model trained beside it, blobworld N (trainer.world_value)
    assert sorted(e.key for e in repo.list()) == [f"{model}/{n}/model.onnx" if n else f"{model}/config.pbtxt"
                                                 for model in ("blobnet", "blobworld") for n in (1, 2, 3, 0)]
    checkpoints = open_store(cfg.storage.checkpoint_dir)
    assert {e.key for e in checkpoints.list()} >= {"trainer.pt", "versions/v000003.onnx",
                                                   "versions/v000003.world.onnx", "versions/v000003.json"}
    # a second client appears, the first continues its sequence after a restart
    again = ShardWriter(games, "sp-0", rounds_per_shard=10)
    assert again.seq == 3
    other = ShardWriter(games, "sp-1", rounds_per_shard=10)
    for rec in protos[30:40]:
        other.add(rec)
    other.flush()
    resumed = Trainer(cfg)
    assert resumed.run(steps=30) == 0
    assert resumed.progress.step == 30
    assert resumed.progress.rounds_seen == trainer.progress.rounds_seen + 10   # nothing twice
    assert resumed.progress.cursors == {"sp-0": 2, "sp-1": 0}
    # incremental: a scan with nothing new lists each client after its newest key only
    assert resumed.index.scan() == [] and resumed.index.after == {
        "sp-0": shard_key(1, "sp-0", 2), "sp-1": shard_key(1, "sp-1", 0)}


def test_retention_deletes_ingested_shards_from_the_bucket(s3, protos):
    from trainer.service import Trainer
    cfg = _trainer_cfg(_prefix("retain"), **{"storage.retain_hours": 1, "trainer.window_max": 100,
                                            "trainer.window_min": 50})
    games = open_store(cfg.storage.games_dir)
    writer = ShardWriter(games, "sp-0", rounds_per_shard=5)
    for rec in protos[:30]:
        writer.add(rec)
    writer.flush()
    trainer = Trainer(cfg)
    trainer.clock = lambda: time.time() + 7200                # two hours later
    assert trainer.run(steps=6) == 0
    left = [e.key for e in games.list()]
    assert 1 <= len(left) < 6
    assert shard_key(1, "sp-0", 5) in left                   # the client's newest stays


def test_a_partial_upload_is_never_ingested(s3, protos):
    from trainer.service import Trainer
    cfg = _trainer_cfg(_prefix("partial"))
    games = open_store(cfg.storage.games_dir)
    client = s3.client()
    blob = encode_shard(protos[:10])
    # an interrupted multipart upload: parts sent, never completed -> no object at all
    key = f"{games.prefix}/{shard_key(1, 'sp-0', 0)}"
    upload = client.create_multipart_upload(Bucket="blobzero", Key=key)
    client.upload_part(Bucket="blobzero", Key=key, UploadId=upload["UploadId"], PartNumber=1,
                       Body=blob[: len(blob) // 2])
    # a PUT whose connection dies before the body is complete -> no object either
    _raw_truncated_put(s3, f"/blobzero/{games.prefix}/{shard_key(1, 'sp-0', 1)}", blob)
    # an object that holds only a prefix of a shard (a foreign writer) -> quarantined, not ingested
    games.put(shard_key(1, "sp-0", 2), blob[: len(blob) // 2])
    assert [e.key for e in games.list()] == [shard_key(1, "sp-0", 2)]
    trainer = Trainer(cfg)
    assert trainer.run(steps=1, duration=3) == 0
    assert trainer.progress.rounds_seen == 0 and trainer.progress.positions_seen == 0
    assert [e.key for e in games.list()] == [f"quarantine/{shard_key(1, 'sp-0', 2)}",
                                            f"quarantine/{shard_key(1, 'sp-0', 2)}.reason"]


def _raw_truncated_put(s3, path, blob):
    """Send a PUT announcing the whole shard, send half of it, and drop the connection."""
    import socket
    with socket.create_connection(("127.0.0.1", s3.port)) as sock:
        sock.sendall((f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1:{s3.port}\r\n"
                      f"Content-Length: {len(blob)}\r\n\r\n").encode() + blob[: len(blob) // 2])
    time.sleep(0.5)


OUTAGE_S = 30.0


def test_the_endpoint_down_for_30_s_loses_nothing_and_ingests_nothing_twice(s3, protos):
    """Self-play keeps finished shards and retries; the trainer waits; after the endpoint is
    back (30 s later) every round is ingested exactly once."""
    from trainer.service import Trainer
    cfg = _trainer_cfg(_prefix("outage"), **{"trainer.min_positions": 10 ** 9})   # ingest only
    games = open_store(cfg.storage.games_dir)
    writer = ShardWriter(games, "sp-0", rounds_per_shard=5, backoff_initial_s=0.2,
                               backoff_max_s=0.5)
    failures = []
    writer.on_upload_error = lambda: failures.append(1)
    for rec in protos[:10]:
        writer.add(rec)
    trainer = Trainer(cfg)
    trainer._check_storage()
    trainer._ingest_new()
    assert trainer.progress.rounds_seen == 10
    s3.stop()                                                     # the endpoint goes away
    down_since = time.monotonic()
    try:
        for rec in protos[10:25]:
            writer.add(rec)                                       # rounds keep coming
        writer.flush()
        assert len(writer.pending) == 3 and writer.pending_rounds == 15 and writer.upload_errors
        assert len(failures) == writer.upload_errors
        with pytest.raises(StorageUnavailable):
            trainer._ingest_new()                                 # the trainer's loop logs and waits
        waiting = threading.Thread(target=trainer._read_shard,
                                   args=(trainer.reader.root / shard_key(1, "sp-0", 0),))
        waiting.start()                                           # a read retries until it answers
        while time.monotonic() - down_since < OUTAGE_S:           # self-play goes on meanwhile
            writer.flush()
            time.sleep(1.0)
        assert waiting.is_alive() and writer.pending_rounds == 15
    finally:
        s3.start()                                                # back on the same port
    waiting.join(30)
    assert not waiting.is_alive()
    assert writer.drain(timeout_s=30) == 0 and not writer.pending
    trainer._ingest_new()
    trainer._ingest_new()
    assert trainer.progress.rounds_seen == 25                     # every round, once
    assert trainer.progress.cursors == {"sp-0": 4}
    assert [e.key for e in games.list()] == [shard_key(1, "sp-0", i) for i in range(5)]


def test_shard_reader_on_a_bucket_quarantines_a_corrupt_object(s3, protos):
    games = open_store(_prefix("corrupt"))
    games.put(shard_key(1, "x", 0), b"not gzip")
    reader = ShardReader(games)
    assert reader.read(reader.root / shard_key(1, "x", 0)) == []
    assert games.exists(f"quarantine/{shard_key(1, 'x', 0)}.reason")
    assert not games.exists(shard_key(1, "x", 0))
    assert isinstance(games, S3Store)


def test_bench_train_measures_ingest_from_a_bucket(s3, protos):
    from blobzero.bench import train
    result = train.ingest_rate_bucket(protos[:8], shards=2, rounds_per_shard=4, url=_prefix("bench"))
    assert result["shards"] == 2 and result["rounds_per_s"] > 0 and result["rounds_per_cpu_s"] > 0
    assert result["bucket"].startswith("s3://blobzero/")

