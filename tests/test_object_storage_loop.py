"""The whole loop through a bucket (issue 19): ``blobzero loop --set storage.url=s3://...``
against a real S3 API server on loopback and the real tritonserver reading its model
repository from ``s3://``. Self-play writes shards as objects, the trainer ingests them and
publishes versions as objects, Triton hot-loads a new version from the bucket, and self-play
plays with it (its shards are named by the version that answered). No local games, model or
checkpoint directory exists at any point."""
import json
import os
import subprocess
import sys
from pathlib import Path

from plumbing.shards import KEY_RE
from plumbing.storage import open_store
from s3_helpers import S3Server, s3_environment

ROOT = Path(__file__).resolve().parents[1]
TINY = ["network.preset=tiny", "search.preset=light", "selfplay.games_in_flight=64",
        "selfplay.rounds_per_shard=16", "selfplay.shard_max_seconds=5",
        "trainer.batch_size=64", "trainer.min_positions=300", "trainer.window_min=1000",
        "trainer.steps_per_publish=25", "trainer.checkpoint_every=10", "trainer.sample_reuse=8"]


def test_blobzero_loop_runs_end_to_end_through_a_bucket(tmp_path):
    server = S3Server().start()
    try:
        with s3_environment(server):
            server.bucket("blobzero")
            url = "s3://blobzero/loop"
            args = [sys.executable, "-m", "blobzero.cli", "loop", "--minutes", "1.25",
                    "--run-dir", str(tmp_path / "run"), "--watch-deals", "20", "--arena-deals", "20",
                    "--opponents", "greedy", "--set", f"storage.url={url}"]
            for item in TINY:
                args += ["--set", item]
            result = subprocess.run(args, capture_output=True, text=True, timeout=420, cwd=ROOT,
                                    env=dict(os.environ))
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            assert "stopped cleanly" in result.stdout
            print(result.stdout[-2500:])                # the run's figures (pytest -s shows them)
            games = open_store(f"{url}/games")
            shards = [KEY_RE.match(e.key) for e in games.list()]
            assert shards and all(shards)
            # a version the trainer published to the bucket, loaded by Triton from s3://, answered
            assert max(int(m["version"]) for m in shards) >= 2, [e.key for e in games.list()]
            repo = open_store(f"{url}/model_repository")
            assert any(e.key.startswith("blobnet/2/") for e in repo.list()) or \
                len([e for e in repo.list() if e.key.endswith("model.onnx")]) >= 2
            checkpoints = open_store(f"{url}/checkpoints")
            keys = {e.key for e in checkpoints.list()}
            assert "trainer.pt" in keys and "versions/v000002.onnx" in keys
            # the strength tracker measured versions it read from the bucket (no mirror), and its
            # results, the report and the curve are beside the checkpoints, in the bucket
            results = open_store(url)
            assert results.exists("strength.json") and results.exists("report.json")
            assert results.exists("learning_curve.png")
            # the world value the trainer learned beside BlobNet, from self-play's leaf worlds
            assert results.exists("world_curve.png") and "world value v" in result.stdout
            assert any(e.key.startswith("blobworld/") for e in repo.list())
            # the report says what training added: the final version beside version 1 and the
            # same search with no network, on the same deals, with paired differences
            report = json.loads(results.get("report.json"))
            assert report["world_value"]["worlds_seen"] > 0 and report["world_value"]["world_loss"] > 0
            added = report["training_added"]
            assert added["opponent"] == "greedy"
            agents = [row["agent"] for row in added["rows"]]
            assert agents[1:] == ["v1", "uniform"] and agents[0] != "v1"
            for row in added["rows"][1:]:
                lo, hi = row["paired"]["ci95"]
                assert lo <= row["paired"]["final_minus_this"] <= hi
            assert "what training added" in result.stdout
            assert all("per_deal" not in p for p in json.loads(results.get("strength.json"))["points"])
            run = tmp_path / "run"
            assert not (run / "games").exists() and not (run / "model_repository").exists()
            assert not (run / "checkpoints").exists() and not (run / "strength-mirror").exists()
    finally:
        server.stop()
