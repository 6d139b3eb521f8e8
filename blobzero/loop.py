"""``blobzero loop``: the whole system as local processes — what ``make run`` runs.

1. prepare a run directory (games, model repository, checkpoints, logs, the effective config);
2. the trainer writes the local model config and version 1 (fresh weights);
3. start the real ``tritonserver`` (python backend running the ONNX file), then one self-play
   client and the trainer as subprocesses, all on loopback ports that are free;
4. show live progress for the time budget, then stop everything cleanly (SIGTERM);
5. play the arena: published versions against random play and against version 1, and print
   the table (also saved as ``report.json`` in the run directory).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from plumbing import config as configuration
from plumbing.fsio import atomic_write_text

LOG_TAIL = 30


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--minutes", type=float, default=8.0,
                        help="self-play + training time (default: %(default)s)")
    parser.add_argument("--run-dir", type=Path,
                        help="where everything is written (default: runs/<date-time>)")
    parser.add_argument("--arena-deals", type=int, default=1000,
                        help="duplicate deals per arena match (default: %(default)s)")
    parser.add_argument("--arena-versions", type=int, default=3,
                        help="versions besides v1 to evaluate, evenly spaced, newest included")


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
    grpc, http, metrics, selfplay, trainer = _free_ports(5)
    cfg = dataclasses.replace(
        cfg,
        storage=dataclasses.replace(cfg.storage, games_dir=str(run_dir / "games"),
                                    model_repository=str(run_dir / "model_repository"),
                                    checkpoint_dir=str(run_dir / "checkpoints")),
        triton=dataclasses.replace(cfg.triton, url=f"127.0.0.1:{grpc}", grpc_port=grpc,
                                   http_port=http, metrics_port=metrics, flavour="local"),
        metrics=dataclasses.replace(cfg.metrics, host="127.0.0.1", selfplay_port=selfplay,
                                    trainer_port=trainer),
    ).validate()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    atomic_write_text(run_dir / "blobzero.toml",
                      "# Effective configuration of this run (written by blobzero loop)\n\n" + cfg.to_toml())
    return cfg


def _spawn(name: str, args: list[str], run_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "blobzero.cli", *args, "--config", str(run_dir / "blobzero.toml")]
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


def run_loop(cfg: configuration.Config, run_dir: Path, minutes: float, out=sys.stdout) -> dict:
    """Steps 1-4; returns a summary. Raises LoopError (with log tails) when a part fails."""
    from services.triton_local import LocalTriton, ServerConfig

    interactive = out.isatty()
    cfg = prepare(cfg, run_dir)
    print(f"run directory {run_dir}  (config {run_dir / 'blobzero.toml'}, logs {run_dir / 'logs'})", file=out)
    print(f"network '{cfg.network.preset}', search {cfg.search.build().determinizations}x"
          f"{cfg.search.build().simulations}, {cfg.table.players} players, "
          f"{cfg.table.cards_min}-{cfg.table.cards_max} cards, {minutes:g} minutes of training", file=out)
    init = _spawn("trainer-init", ["train", "--init-only"], run_dir)
    if init.wait() != 0:
        raise LoopError("the trainer could not prepare the model repository:\n"
                        + _tail(run_dir / "logs" / "trainer-init.log"))
    server = LocalTriton(ServerConfig(Path(cfg.storage.model_repository), run_dir / "triton",
                                      grpc_port=cfg.triton.grpc_port, http_port=cfg.triton.http_port,
                                      metrics_port=cfg.triton.metrics_port, instances=1))
    selfplay = trainer = None
    summary: dict = {}
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.start()
        print(f"tritonserver ready on {server.url} (metrics {server.metrics_url})", file=out)
        selfplay = _spawn("selfplay", ["selfplay", "--progress", "off"], run_dir)
        trainer = _spawn("trainer", ["train"], run_dir)
        started = time.monotonic()
        deadline = started + minutes * 60
        last_line = 0.0
        while time.monotonic() < deadline:
            for proc, name in ((selfplay, "selfplay"), (trainer, "trainer")):
                if proc.poll() is not None:
                    raise LoopError(f"{name} exited with code {proc.returncode}:\n"
                                    + _tail(run_dir / "logs" / f"{name}.log"))
            if server.poll() is not None:
                raise LoopError("tritonserver exited:\n" + server.log_tail())
            summary = _status(cfg, started)
            now = time.monotonic()
            if interactive:
                print("\r" + summary["line"].ljust(110), end="", file=out, flush=True)
            elif now - last_line >= 30:
                print(summary["line"], file=out, flush=True)
                last_line = now
            time.sleep(1.0)
        if interactive:
            print(file=out)
        summary = _status(cfg, started)
        print(summary["line"], file=out)
    except _Interrupted:
        print("\ninterrupted: stopping the loop", file=out)
        summary["interrupted"] = True
    finally:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        codes = {"selfplay": _stop(selfplay, "selfplay"), "trainer": _stop(trainer, "trainer")}
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


def _status(cfg: configuration.Config, started: float) -> dict:
    sp = _metrics(f"http://127.0.0.1:{cfg.metrics.selfplay_port}/metrics")
    tr = _metrics(f"http://127.0.0.1:{cfg.metrics.trainer_port}/metrics")
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
    return {"line": line, "rounds": rounds, "seconds": elapsed,
            "steps": tr.get("blobzero_trainer_steps_total", 0),
            "version": tr.get("blobzero_trainer_published_version", 0),
            "positions_per_request": leaves / max(requests, 1)}


def choose_versions(archive: Path, extra: int) -> list[int]:
    versions = sorted(int(p.stem[1:]) for p in archive.glob("v*.onnx"))
    if not versions:
        return []
    later = versions[1:]
    if len(later) <= extra:
        picked = later
    else:
        step = len(later) / extra
        picked = sorted({later[min(len(later) - 1, int(round((i + 1) * step)) - 1)] for i in range(extra)})
        picked[-1] = later[-1]
    return [versions[0], *picked]


def arena_table(cfg: configuration.Config, versions: list[int], deals: int, out=sys.stdout) -> list[dict]:
    from blobcore.mcts import AGENT_GREEDY
    from blobcore.search_config import PRESETS
    from blobzero.arena import Agent, format_report, play

    archive = Path(cfg.storage.checkpoint_dir) / "versions"
    search = PRESETS[cfg.arena.search_preset]
    first = Agent("v1", archive / f"v{versions[0]:06d}.onnx")
    rows = []
    for v in versions:
        agent = Agent(f"v{v}", archive / f"v{v:06d}.onnx")
        row = {"version": v}
        for label, opponent in (("random", Agent("random")), ("greedy", Agent("greedy", None, AGENT_GREEDY)),
                                ("v1", first)):
            if label == "v1" and v == versions[0]:
                continue
            report = play(agent, opponent, deals=deals, n_players=cfg.table.players,
                          cards=cfg.table.cards_max, search=search, seed=777,
                          games_in_flight=cfg.arena.games_in_flight)
            print("  " + format_report(report).replace("\n", "\n  "), file=out, flush=True)
            row[label] = report
        rows.append(row)
    return rows


def format_table(rows: list[dict]) -> str:
    def cell(r: dict | None) -> str:
        if r is None:
            return "—".center(26)
        mark = "*" if r["significant"] else " "
        return f"{r['difference']:+6.2f} [{r['ci95'][0]:+5.2f},{r['ci95'][1]:+5.2f}]{mark}".rjust(26)
    lines = [f"{'version':<9}{'score/round':>12}  {'vs random: diff [95% CI]':>26}  "
             f"{'vs greedy: diff [95% CI]':>26}  {'vs v1: diff [95% CI]':>26}"]
    for row in rows:
        score = row["random"]["a_mean_score"]
        lines.append(f"v{row['version']:<8}{score:>12.2f}  {cell(row.get('random'))}  "
                     f"{cell(row.get('greedy'))}  {cell(row.get('v1'))}")
    lines.append("score/round = the version's mean against random play; diff = its mean score per round "
                 "minus its opponent's on the same deals; * = 95% CI excludes 0")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    cfg = configuration.from_args_or_exit(args, "loop")
    run_dir = args.run_dir or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    try:
        summary = run_loop(cfg, run_dir, args.minutes)
    except LoopError as exc:
        print(f"\nblobzero loop: {exc}", file=sys.stderr)
        return 1
    if summary.get("interrupted"):
        return 130
    cfg = summary["config"]
    versions = choose_versions(Path(cfg.storage.checkpoint_dir) / "versions", args.arena_versions)
    print(f"arena: versions {versions}, {args.arena_deals} duplicate deals per match, "
          f"search {cfg.arena.search_preset}")
    rows = arena_table(cfg, versions, args.arena_deals)
    table = format_table(rows)
    print("\n" + table)
    report = {"run_dir": str(run_dir), "minutes": args.minutes,
              "selfplay_rounds": summary.get("rounds"), "trainer_steps": summary.get("steps"),
              "versions": versions, "arena": rows, "table": table}
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2, default=str))
    print(f"\nreport saved to {run_dir / 'report.json'}")
    return 0
