"""Strength over time: the tracker measures archived versions against built-in players, keeps
the results crash-safely, exports them as metrics and draws the learning curve."""
import dataclasses
import json
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from blobzero.strength import TREND_POINTS, StrengthMetrics, load_results, manifests, plot, trend, watch
from plumbing.config import load
from services.triton_local import free_ports

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def archive_version(archive: Path, version: int, rounds: int, published: float) -> None:
    """What the trainer writes when it publishes: the ONNX file and its manifest."""
    from trainer.export import export_fresh
    archive.mkdir(parents=True, exist_ok=True)
    export_fresh("tiny", archive / f"v{version:06d}.onnx", seed=version)
    (archive / f"v{version:06d}.json").write_text(json.dumps(
        {"version": version, "step": 10 * version, "rounds_seen": rounds, "positions_seen": 9 * rounds,
         "published_unix": published}))


@pytest.fixture()
def cfg(tmp_path):
    base = load(None, [], env={})
    cfg = dataclasses.replace(base, storage=dataclasses.replace(
        base.storage, checkpoint_dir=str(tmp_path / "checkpoints"),
        model_repository=str(tmp_path / "repo"), games_dir=str(tmp_path / "games")))
    archive = tmp_path / "checkpoints" / "versions"
    archive_version(archive, 1, 0, 1000.0)
    archive_version(archive, 2, 640, 1090.0)
    (archive / "v000003.json").write_text("{half a manif")      # a manifest being written
    return cfg


def test_manifests_skip_unreadable_and_unpublished(cfg):
    found = manifests(Path(cfg.storage.checkpoint_dir) / "versions")
    assert sorted(found) == [1, 2] and found[2]["rounds_seen"] == 640


def test_the_watcher_measures_the_newest_version_and_exports_it(cfg, tmp_path):
    out = tmp_path / "strength.json"
    metrics = StrengthMetrics()
    port = free_ports(1)[0]
    server = metrics.serve("127.0.0.1", port)
    stop = threading.Event()
    lines = []
    thread = threading.Thread(target=watch, args=(cfg, out, ["greedy", "random"], 30, stop),
                              kwargs={"metrics": metrics, "poll_s": 0.1, "log": lines.append})
    thread.start()
    deadline = time.time() + 120
    while len(load_results(out)) < 4 and time.time() < deadline:
        time.sleep(0.2)
    stop.set()
    thread.join(timeout=120)
    points = load_results(out)
    # first the baseline (version 0: the same search with no network), then only the newest
    # version (v1 was superseded before the watcher got to it)
    assert {(p["version"], p["opponent"]) for p in points} == {(0, "greedy"), (0, "random"),
                                                               (2, "greedy"), (2, "random")}
    assert all(p["agent"] == "uniform" for p in points if p["version"] == 0)
    assert any("strength uniform (no network) vs greedy" in line for line in lines)
    greedy = next(p for p in points if p["opponent"] == "greedy" and p["version"] == 2)
    assert greedy["minutes"] == pytest.approx(1.5) and greedy["rounds"] == 640 and greedy["deals"] == 30
    lo, hi = greedy["ci95"]
    assert lo <= greedy["difference"] <= hi
    # the configured search is measured: with the default expert play-outs at the leaves even an
    # untrained tiny network beats a table of greedy players (without them it loses to them)
    assert greedy["difference"] > 0
    assert any("strength v2 vs greedy" in line for line in lines)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'blobzero_strength_score_difference{opponent="greedy"}' in text
    assert "blobzero_strength_version 2.0" in text
    server.shutdown()


def test_the_cli_measures_named_versions_and_draws_the_curve(cfg, tmp_path):
    toml = tmp_path / "blobzero.toml"
    toml.write_text(cfg.to_toml())
    curve = tmp_path / "curve.png"
    res = subprocess.run([sys.executable, "-m", "blobzero.cli", "strength", "--config", str(toml),
                          "--versions", "1,2", "--opponents", "random", "--deals", "20",
                          "--plot", str(curve)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert "v1 vs random" in res.stdout and "v2 vs random" in res.stdout
    points = load_results(tmp_path / "strength.json")
    assert [p["version"] for p in points] == [1, 2] and points[0]["minutes"] == 0
    assert curve.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and curve.stat().st_size > 10_000
    bad = subprocess.run([sys.executable, "-m", "blobzero.cli", "strength", "--config", str(toml),
                          "--versions", "7"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "[7] are not archived" in bad.stderr
    bad = subprocess.run([sys.executable, "-m", "blobzero.cli", "strength", "--config", str(toml),
                          "--opponents", "grandmaster"], cwd=PROJECT_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "unknown agent 'grandmaster'" in bad.stderr


def test_plot_without_points_draws_nothing(tmp_path):
    assert plot([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()


def test_the_trend_pools_the_last_points_weighted_by_deals(tmp_path):
    points = [{"difference": d, "deals": 200} for d in (1.0, 0.0, 0.5)]
    assert trend(points, window=2) == [1.0, 0.5, 0.25]
    # a 600-deal final point counts three times a 200-deal one
    assert trend([{"difference": 0.0, "deals": 200}, {"difference": 1.0, "deals": 600}], window=8) == [0.0, 0.75]
    # a long curve is drawn with its trend line (the PNG is real: matplotlib writes it)
    many = [{"version": v, "opponent": "expert", "minutes": v, "rounds": 100 * v, "difference": 0.1 * v,
             "ci95": [0.1 * v - 0.4, 0.1 * v + 0.4], "deals": 200} for v in range(1, TREND_POINTS + 5)]
    out = plot(many, tmp_path / "curve.png")
    assert out is not None and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_are_never_overwritten_by_a_tracker_that_could_not_read_them(tmp_path):
    """A missing file is no results yet; a damaged one is kept aside and reported; a file that
    cannot be read now raises, so a restarted tracker never saves over the history."""
    out = tmp_path / "strength.json"
    assert load_results(out) == []
    out.write_text('{"points": [{"version": 1')
    assert load_results(out) == []
    assert (tmp_path / "strength.json.damaged").read_text() == '{"points": [{"version": 1'
    from s3_helpers import S3Server, s3_environment
    server = S3Server().start()
    try:
        with s3_environment(server):
            server.bucket("run")
            url = "s3://run/strength.json"
            assert load_results(url) == []                  # none yet
            server.stop()                                   # the endpoint goes away
            with pytest.raises(OSError):
                load_results(url)
    finally:
        server.stop()
