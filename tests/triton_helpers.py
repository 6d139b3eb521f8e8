"""Shared helpers for the serving tests: tiny exported models, repositories, metrics parsing.

Everything here is real (real exports, real tritonserver); nothing is mocked.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from plumbing.netspec import NUM_ACTIONS, STATE_DIM
from plumbing.model_repository import publish_version
from services.triton_local import SHM_DIR, LocalTriton, ServerConfig
from trainer.export import export_fresh

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def export_tiny(path: Path, seed: int) -> Path:
    """A freshly initialised tiny BlobNet exported to ``path``."""
    return export_fresh("tiny", path, seed=seed)


def make_repository(root: Path, onnx_path: Path) -> Path:
    """``root/models`` with ``onnx_path`` published as version 1."""
    repo = root / "models"
    assert publish_version(repo, onnx_path) == 1
    return repo


def start_server(root: Path, repo: Path, **kwargs) -> LocalTriton:
    return LocalTriton(ServerConfig.with_free_ports(repo, root / "triton", **kwargs)).start()


def selfplay_records(root: Path, config: str, rounds: int, *sets: str, model_seed: int = 1,
                     world_model: bool = False) -> list:
    """Run ``blobzero selfplay --config config`` for ``rounds`` rounds against a real
    tritonserver serving a tiny model (and with ``world_model`` a small untrained world-value
    model as blobworld 1; ``--set`` overrides ``sets`` on top of the test's own) and return the
    RoundRecords of every shard it wrote; fails with the client's stderr."""
    from plumbing.shards import SUFFIX, decode_shard

    repo = make_repository(root, export_tiny(root / "tiny.onnx", seed=model_seed))
    if world_model:
        import torch

        from plumbing.netspec import WORLD_MODEL_NAME
        from trainer.world_model import WorldNet, WorldNetConfig, export_onnx
        torch.manual_seed(model_seed)
        export_onnx(WorldNet(WorldNetConfig(hidden=32, depth=1)), root / "world.onnx")
        assert publish_version(repo, root / "world.onnx", model_name=WORLD_MODEL_NAME) == 1
    server = start_server(root, repo, instances=1)
    overrides = [f"triton.url={server.url}", f"storage.games_dir={root / 'games'}",
                 "selfplay.games_in_flight=16", "metrics.selfplay_port=0", *sets]
    try:
        res = subprocess.run([PYTHON, "-m", "blobzero.cli", "selfplay", "--config", config,
                              "--rounds", str(rounds), "--progress", "off",
                              *(arg for o in overrides for arg in ("--set", o))],
                             capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    finally:
        server.stop()
    assert res.returncode == 0, res.stderr[-2000:]
    return [r for shard in sorted((root / "games").rglob("*" + SUFFIX)) for r in decode_shard(shard.read_bytes())]


def random_batch(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(states (n,256), masks (n,52)) float32; every row has at least one legal action."""
    rng = np.random.default_rng(seed)
    states = (rng.random((n, STATE_DIM)) < 0.25).astype(np.float32)
    masks = (rng.random((n, NUM_ACTIONS)) < 0.3).astype(np.float32)
    masks[np.arange(n), rng.integers(0, NUM_ACTIONS, n)] = 1.0
    return states, masks


_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][\w:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)')


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of metric ``name`` whose labels include ``labels`` (Prometheus text format).

    Parsed by hand: prometheus_client's parser renames counter samples to ``*_total``.
    """
    total = 0.0
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match["name"] != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', match["labels"] or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match["value"])
    return total


def shm_files(prefix: str) -> list[str]:
    return sorted(p.name for p in SHM_DIR.glob(prefix + "*"))
