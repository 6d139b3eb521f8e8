"""``blobzero loop``: the whole system as local processes — what ``make run`` runs.

1. prepare a run directory (games, model repository, checkpoints, logs, the effective config);
2. the trainer writes the local model config and version 1 (fresh weights);
3. start the real ``tritonserver`` (python backend running the ONNX file), then one self-play
   client and the trainer as subprocesses, all on loopback ports that are free;
   and the strength tracker (``blobzero strength --watch``, niced: it measures each newest
   published version against ``greedy`` and ``expert`` while training goes on);
4. show live progress for the time budget, then stop everything cleanly (SIGTERM);
5. measure the final version with more deals, print the strength table and what training
   added (version 1 and the same search with no network on the first of those deals, paired), and save
   ``report.json``, ``strength.json`` and ``learning_curve.png`` beside the checkpoints: in the
   run directory, or with ``--set storage.url=s3://…`` in the bucket (every part reads and
   writes through plumbing/storage.py; nothing is mirrored).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from blobzero.strength import CURVE, DEFAULT_OPPONENTS, parse_opponents, results_location
from plumbing import config as configuration
from plumbing.fsio import atomic_write_text
from plumbing.storage import join, locations

LOG_TAIL = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="self-play + training time (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path,
                        help="where everything is written (default: runs/<date-time>)")
    parser.add_argument("--arena-deals", type=int, default=600,
                        help="duplicate deals for the final version's measurement (default: %(default)s)")
    parser.add_argument("--baseline-deals", type=int, default=600,
                        help="of those deals, how many version 1 and the search with no network are "
                             "measured on beside the final version, paired (0 = skip; default: %(default)s)")
    parser.add_argument("--watch-deals", type=int, default=200,
                        help="duplicate deals per measurement while training (default: %(default)s)")
    parser.add_argument("--opponents", default=",".join(DEFAULT_OPPONENTS),
                        help="built-in players the strength is measured against (default: %(default)s)")


class LoopError(RuntimeError):
    pass


def _metrics(url: str) -> dict[str, float]:
    """Scrape a Prometheus endpoint into {name{labels}: value} (empty on failure)."""
    from prometheus_client.parser import text_string_to_metric_families
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


def _tail(path: Path, lines: int = LOG_TAIL) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def _free_ports(count: int) -> list[int]:
    from services.triton_local import free_ports
    return free_ports(count)


def prepare(cfg: configuration.Config, run_dir: Path) -> configuration.Config:
    """The effective config of this run: storage in ``run_dir``, free loopback ports."""
    grpc, http, metrics, selfplay, trainer, strength = _free_ports(6)
    cfg = dataclasses.replace(
        cfg,
        storage=dataclasses.replace(cfg.storage, games_dir=str(run_dir / "games"),
                                    model_repository=str(run_dir / "model_repository"),
                                    checkpoint_dir=str(run_dir / "checkpoints")),
        triton=dataclasses.replace(cfg.triton, url=f"127.0.0.1:{grpc}", grpc_port=grpc,
                                   http_port=http, metrics_port=metrics, flavour="local"),
        metrics=dataclasses.replace(cfg.metrics, host="127.0.0.1", selfplay_port=selfplay,
                                    trainer_port=trainer, strength_port=strength),
    ).validate()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    atomic_write_text(run_dir / "blobzero.toml",
                      "# Effective configuration of this run (written by blobzero loop)\n\n" + cfg.to_toml())
    return cfg


def _spawn(name: str, args: list[str], run_dir: Path, config: Path | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "blobzero.cli", *args, "--config", str(config or run_dir / "blobzero.toml")]
    with open(run_dir / "logs" / f"{name}.log", "ab") as log:   # the child keeps its own copy
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen | None, name: str, timeout: float = 60) -> int | None:
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        print(f"  {name} ignored SIGTERM for {timeout:.0f} s; killing it", file=sys.stderr)
        proc.kill()
        return proc.wait()


class _Interrupted(Exception):
    pass


def run_loop(cfg: configuration.Config, run_dir: Path, minutes: float, out=sys.stdout,
             opponents: tuple[str, ...] = DEFAULT_OPPONENTS, watch_deals: int = 200) -> dict:
    """Steps 1-4; returns a summary. Raises LoopError (with log tails) when a part fails.
    ``watch_deals`` 0 turns the strength tracker off."""
    from services.triton_local import LocalTriton, ServerConfig

    interactive = out.isatty()
    cfg = prepare(cfg, run_dir)
    print(f"run directory {run_dir}  (config {run_dir / 'blobzero.toml'}, logs {run_dir / 'logs'})", file=out)
    search = cfg.selfplay_search()
    print(f"network '{cfg.network.preset}', search {search.describe()}, "
          f"{cfg.table.describe()}, {minutes:g} minutes of training", file=out)
    init = _spawn("trainer-init", ["train", "--init-only"], run_dir)
    if init.wait() != 0:
        raise LoopError("the trainer could not prepare the model repository:\n"
                        + _tail(run_dir / "logs" / "trainer-init.log"))
    # a directory or an s3:// repository (storage.url = s3://...: Triton reads the bucket)
    server = LocalTriton(ServerConfig(cfg.storage.model_repository, run_dir / "triton",
                                      grpc_port=cfg.triton.grpc_port, http_port=cfg.triton.http_port,
                                      metrics_port=cfg.triton.metrics_port, instances=1))
    selfplay = trainer = watcher = None
    summary: dict = {}
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"tritonserver ready on {server.url} (metrics {server.metrics_url})", file=out)
        selfplay = _spawn("selfplay", ["selfplay", "--progress", "off"], run_dir)
        trainer = _spawn("trainer", ["train"], run_dir)
        if watch_deals:
            # niced and single-threaded: on a 2-core box it takes what self-play leaves
            watcher = _spawn("strength", ["strength", "--watch", "--nice", "10", "--deals", str(watch_deals),
                                          "--opponents", ",".join(opponents),
                                          "--out", str(results_location(cfg))], run_dir)
        started = time.monotonic()
        deadline = started + minutes * 60
        last_line = 0.0
        while time.monotonic() < deadline:
            for proc, name in ((selfplay, "selfplay"), (trainer, "trainer"), (watcher, "strength")):
                if proc is not None and proc.poll() is not None:
                    raise LoopError(f"{name} exited with code {proc.returncode}:\n"
                                    + _tail(run_dir / "logs" / f"{name}.log"))
            if server.poll() is not None:
                raise LoopError("tritonserver exited:\n" + server.log_tail())
            summary = _status(cfg, started, watcher is not None)
            now = time.monotonic()
            if interactive:
                print("\r" + summary["line"].ljust(110), end="", file=out, flush=True)
            elif now - last_line >= 30:
                print(summary["line"], file=out, flush=True)
                last_line = now
            time.sleep(1.0)
        if interactive:
            print(file=out)
        summary = _status(cfg, started, watcher is not None)
        print(summary["line"], file=out)
    except _Interrupted:
        print("\ninterrupted: stopping the loop", file=out)
        summary["interrupted"] = True
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        codes = {"selfplay": _stop(selfplay, "selfplay"), "trainer": _stop(trainer, "trainer"),
                 "strength": _stop(watcher, "strength", timeout=120)}
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    bad = {k: v for k, v in codes.items() if v not in (0, None)}
    if bad:
        raise LoopError(f"unclean shutdown {bad}:\n" + "\n".join(
            _tail(run_dir / "logs" / f"{k}.log") for k in bad))
    print("stopped cleanly: self-play and trainer exited 0, tritonserver stopped", file=out)
    summary["config"] = cfg
    return summary


def _raise_interrupt(signum, _frame):
    raise _Interrupted()


def _status(cfg: configuration.Config, started: float, strength: bool = False) -> dict:
    sp = _metrics(f"http://127.0.0.1:{cfg.metrics.selfplay_port}/metrics")
    tr = _metrics(f"http://127.0.0.1:{cfg.metrics.trainer_port}/metrics")
    st = _metrics(f"http://127.0.0.1:{cfg.metrics.strength_port}/metrics") if strength else {}
    elapsed = time.monotonic() - started
    rounds = sp.get("blobzero_selfplay_rounds_total", 0)
    requests = sp.get("blobzero_selfplay_requests_total", 0)
    leaves = sp.get("blobzero_selfplay_leaf_evaluations_total", 0)
    line = (f"[{int(elapsed) // 60:02d}:{int(elapsed) % 60:02d}] self-play {int(rounds)} rounds "
            f"({rounds / max(elapsed, 1) * 60:.0f}/min, {leaves / max(requests, 1):.0f} pos/request) | "
            f"trainer step {int(tr.get('blobzero_trainer_steps_total', 0))} "
            f"v{int(tr.get('blobzero_trainer_published_version', 0))} "
            f"loss p={tr.get('blobzero_trainer_loss{kind=policy}', 0):.3f} "
            f"v={tr.get('blobzero_trainer_loss{kind=value}', 0):.4f} "
            f"window {int(tr.get('blobzero_trainer_window_positions', 0))}")
    measured = sorted(k for k in st if k.startswith("blobzero_strength_score_difference{"))
    if measured:
        line += f" | v{int(st.get('blobzero_strength_version', 0))} " + " ".join(
            f"{k.split('opponent=')[1].rstrip('}')} {st[k]:+.2f}" for k in measured)
    return {"line": line, "rounds": rounds, "seconds": elapsed,
            "rounds_per_minute": rounds / max(elapsed, 1) * 60,
            "evaluations_per_round": leaves / max(rounds, 1),
            "steps": tr.get("blobzero_trainer_steps_total", 0),
            "version": tr.get("blobzero_trainer_published_version", 0),
            "positions_per_request": leaves / max(requests, 1)}


def strength_table(points: list[dict]) -> str:
    """One row per measured version: minutes, rounds, and the difference per opponent."""
    opponents = sorted({p["opponent"] for p in points})
    by_version: dict[int, dict] = {}
    for p in points:
        by_version.setdefault(p["version"], {})[p["opponent"]] = p
    lines = [f"{'version':<9}{'minutes':>8}{'rounds':>9}{'deals':>7}  "
             + "  ".join(f"{'vs ' + o + ': diff [95% CI]':>27}" for o in opponents)]
    for version in sorted(by_version):
        row = by_version[version]
        first = next(iter(row.values()))
        cells = []
        for o in opponents:
            p = row.get(o)
            if p is None:
                cells.append("—".rjust(27))
                continue
            lo, hi = p["ci95"]
            mark = "*" if lo > 0 or hi < 0 else " "
            cells.append(f"{p['difference']:+6.2f} [{lo:+5.2f},{hi:+5.2f}]{mark}".rjust(27))
        minutes = "" if first.get("minutes") is None else f"{first['minutes']:.1f}"
        rounds = "" if first.get("rounds") is None else str(first["rounds"])
        name = "uniform" if version == 0 else f"v{version}"
        lines.append(f"{name:<9}{minutes:>8}{rounds:>9}{first['deals']:>7}  " + "  ".join(cells))
    lines.append("diff = score per round of one model seat minus the mean of the 3 opponent seats, same "
                 "deals, every seat in turn; minutes/rounds = training time and self-play rounds behind "
                 "the version; uniform = the same search with no network; * = 95% CI excludes 0")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    cfg = configuration.from_args_or_exit(args, "loop")
    run_dir = args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        opponents = parse_opponents(args.opponents, cfg)
    except ValueError as exc:
        print(f"blobzero loop: {exc}", file=sys.stderr)
        return 2
    try:
        summary = run_loop(cfg, run_dir, args.minutes, opponents=opponents, watch_deals=args.watch_deals)
    except LoopError as exc:
        print(f"\nblobzero loop: {exc}", file=sys.stderr)
        return 1
    if summary.get("interrupted"):
        return 130
    cfg = summary["config"]
    from blobzero.strength import (WORLD_CURVE, archive_dir, contribution, load_results, manifests, plot,
                                   plot_world, remeasure, save_file)
    results = results_location(cfg)          # the run directory's, or the bucket's
    found = manifests(archive_dir(cfg))
    points = load_results(results)
    if found and args.arena_deals:
        newest = max(found)
        print(f"strength of the final version v{newest}: {args.arena_deals} duplicate deals per opponent, "
              f"one model seat vs {cfg.arena_table()[0] - 1} of the opponent at "
              f"{'x'.join(map(str, cfg.arena_table()))}, search {cfg.arena.search_preset}")
        # everything else has stopped: the model may use both cores of a small machine
        points = remeasure(cfg, results, [newest], found, list(opponents), args.arena_deals,
                           threads=min(2, os.cpu_count() or 1))
    table = strength_table(points) if points else "(no version was measured)"
    print("\n" + table)
    added = None
    final = [p for p in points if "per_deal" in p and p["opponent"] == "expert"] or \
            [p for p in points if "per_deal" in p]
    if final and args.baseline_deals > 0:
        print(f"\nmeasuring the same search with version 1 and with no network on the first "
              f"{min(args.baseline_deals, args.arena_deals)} of those deals ...")
        added = contribution(cfg, final[-1], args.baseline_deals, threads=min(2, os.cpu_count() or 1))
        print(added["table"])
    curve = plot(points, join(locations(cfg.storage).results, CURVE),
                 title=f"{cfg.network.preset} net, {'x'.join(map(str, cfg.arena_table()))}, "
                       f"{args.minutes:g} min on this machine")
    world_curve = plot_world(found, join(locations(cfg.storage).results, WORLD_CURVE))
    world = found[max(found)] if found else {}
    if world.get("world_new_loss") is not None:      # trainer.world_value
        print(f"world value v{max(found)}: held-out error {world['world_new_loss']:.4f} per seat "
              f"(predicting the mean ~0.135) after {world.get('worlds_seen', 0):,} labelled leaf worlds; "
              f"search with it: search.rollout=world worlds.model=version")
    report = {"run_dir": str(run_dir), "minutes": args.minutes,
              "selfplay_rounds": summary.get("rounds"), "trainer_steps": summary.get("steps"),
              "evaluations_per_round": summary.get("evaluations_per_round"),
              "rounds_per_minute": summary.get("rounds_per_minute"),
              "strength": [{k: v for k, v in p.items() if k != "per_deal"} for p in points],
              "table": table,
              "training_added": None if added is None else {k: added[k] for k in ("opponent", "deals", "rows")},
              "learning_curve": str(curve) if curve else None,
              "world_value": {k: world.get(k) for k in ("world_loss", "world_new_loss", "worlds_seen")},
              "world_curve": str(world_curve) if world_curve else None}
    saved = save_file(join(locations(cfg.storage).results, "report.json"),
                      json.dumps(report, indent=2, default=str).encode())
    if curve:
        print(f"learning curve: {curve}")
    if world_curve:
        print(f"world-value curve: {world_curve}")
    print(f"\nreport saved to {saved}")
    return 0
