"""The whole loop against the real local tritonserver, with a tiny BlobNet, as real processes:
self-play writes shards, the trainer learns and publishes, the client picks the new version
up; then the failure drills: kill -9 the trainer (it resumes), a corrupt shard (quarantined),
the server going away and coming back (the client retries and continues), kill -9 the
client (no partial shard is visible), SIGTERM (exit 0, everything flushed)."""
import re
import signal
import socket
from pathlib import Path

import torch

from plumbing.config import load
from blobzero.loop import _metrics, _spawn, prepare
from helpers import wait_until
from plumbing.shards import CLIENTS, ShardReader, decode_shard, sanitize_client_id, shard_key
from services.triton_local import LocalTriton, ServerConfig

TINY = ["network.preset=tiny", "search.preset=light", "selfplay.games_in_flight=64",
        "selfplay.rounds_per_shard=16", "selfplay.shard_max_seconds=5",
        "trainer.batch_size=64", "trainer.min_positions=300", "trainer.window_min=1000",
        "trainer.steps_per_publish=25", "trainer.checkpoint_every=10", "trainer.sample_reuse=8"]


def checkpoint_step(run_dir: Path) -> int:
    path = run_dir / "checkpoints" / "trainer.pt"
    if not path.exists():
        return 0
    return torch.load(path, map_location="cpu", weights_only=False)["progress"]["step"]


def start_server(cfg, run_dir):
    return LocalTriton(ServerConfig(Path(cfg.storage.model_repository), run_dir / "triton",
                                    grpc_port=cfg.triton.grpc_port, http_port=cfg.triton.http_port,
                                    metrics_port=cfg.triton.metrics_port, instances=1)).start()


def test_the_whole_loop_and_its_failure_drills(tmp_path):
    run_dir = tmp_path
    cfg = prepare(load(None, TINY, env={}), run_dir)
    logs = run_dir / "logs"
    assert _spawn("trainer-init", ["train", "--init-only"], run_dir).wait() == 0
    reader = ShardReader(cfg.storage.games_dir)
    selfplay_metrics = f"http://127.0.0.1:{cfg.metrics.selfplay_port}/metrics"
    trainer_metrics = f"http://127.0.0.1:{cfg.metrics.trainer_port}/metrics"
    server = start_server(cfg, run_dir)
    procs = {}
    try:
        procs["selfplay"] = _spawn("selfplay", ["selfplay", "--progress", "off"], run_dir)
        procs["trainer"] = _spawn("trainer", ["train"], run_dir)
        watched = [(procs["selfplay"], logs / "selfplay.log"), (procs["trainer"], logs / "trainer.log")]

        # -- the loop: rounds written, trainer steps, v2 published and used by the client --
        wait_until(lambda: any(s.version >= 2 for s in reader.list()), 150,
                   "a shard played by model version 2", watched)
        sp, tr = _metrics(selfplay_metrics), _metrics(trainer_metrics)
        assert sp["blobzero_selfplay_rounds_total"] > 0
        assert sp["blobzero_selfplay_model_version"] >= 2
        assert sp["blobzero_selfplay_leaf_evaluations_total"] / sp["blobzero_selfplay_requests_total"] > 8
        assert tr["blobzero_trainer_steps_total"] >= 25 and tr["blobzero_trainer_published_version"] >= 2
        served = sorted(int(p.name) for p in (Path(cfg.storage.model_repository) / "blobnet").iterdir()
                        if p.name.isdigit())
        assert served[-1] >= 2 and len(served) <= cfg.trainer.keep_versions      # pruned to the last K
        assert (run_dir / "checkpoints" / "versions" / "v000002.onnx").exists()  # archived for rollbacks

        # -- kill -9 the trainer mid-run; a restart resumes from its checkpoint --
        wait_until(lambda: checkpoint_step(run_dir) >= 10, 60, "a trainer checkpoint", watched)
        procs["trainer"].kill()
        procs["trainer"].wait()
        saved = checkpoint_step(run_dir)
        procs["trainer"] = _spawn("trainer-restarted", ["train"], run_dir)
        watched[1] = (procs["trainer"], logs / "trainer-restarted.log")
        wait_until(lambda: f"resumed at step {saved}:" in (logs / "trainer-restarted.log").read_text(),
                   60, "the trainer to resume", watched)
        wait_until(lambda: checkpoint_step(run_dir) > saved, 90, "training to continue", watched)

        # -- a corrupt shard is quarantined and the trainer keeps going --
        good = reader.list()[0].path
        corrupt = Path(cfg.storage.games_dir) / shard_key(1, "intruder", 0)
        corrupt.parent.mkdir()
        corrupt.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
        quarantine = Path(cfg.storage.games_dir) / "quarantine"
        wait_until(lambda: (quarantine / (shard_key(1, "intruder", 0) + ".reason")).exists(), 30,
                   "the corrupt shard to be quarantined", watched)
        assert not corrupt.exists() and procs["trainer"].poll() is None

        # -- the server goes away and comes back: the client logs, retries and continues --
        server.stop()
        wait_until(lambda: "retrying" in (logs / "selfplay.log").read_text(), 30,
                   "the client to report the outage", watched)
        assert procs["selfplay"].poll() is None
        server = start_server(cfg, run_dir)
        before = _metrics(selfplay_metrics)["blobzero_selfplay_rounds_total"]
        wait_until(lambda: _metrics(selfplay_metrics)["blobzero_selfplay_rounds_total"] > before + 20,
                   60, "self-play to continue after the restart", watched)

        # -- kill -9 the client: no partial shard is ever visible --
        procs["selfplay"].kill()
        procs["selfplay"].wait()
        for shard in reader.list():
            decode_shard(shard.path.read_bytes())       # raises on a partial file

        # -- SIGTERM: a client flushes what it finished and exits 0; so does the trainer --
        procs["selfplay"] = _spawn("selfplay-2", ["selfplay", "--progress", "off"], run_dir)
        watched[0] = (procs["selfplay"], logs / "selfplay-2.log")
        wait_until(lambda: _metrics(selfplay_metrics).get("blobzero_selfplay_rounds_total", 0) >= 5,
                   60, "the second client to finish rounds", watched)
        procs["selfplay"].send_signal(signal.SIGTERM)
        assert procs["selfplay"].wait(60) == 0
        # every round it finished is in one of its shards (in-flight rounds are dropped); it took
        # the killed client's id back (the host name) and continued its sequence numbers
        log2 = (logs / "selfplay-2.log").read_text()
        done = re.search(r"done: (\d+) rounds", log2)
        client, first_seq = re.search(r"client (\S+) \(shards from seq (\d+)\)", log2).groups()
        assert client == sanitize_client_id(socket.gethostname()) and int(first_seq) > 0
        mine = [s for s in reader.list() if s.client == client and s.seq >= int(first_seq)]
        assert done and int(done[1]) >= 5
        assert sum(len(reader.read(s.path)) for s in mine) == int(done[1])
        assert not [p for p in Path(cfg.storage.games_dir).rglob(".*")
                    if CLIENTS not in p.parts]                  # no temporary file left
        procs["trainer"].send_signal(signal.SIGTERM)
        assert procs["trainer"].wait(60) == 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        server.stop()
