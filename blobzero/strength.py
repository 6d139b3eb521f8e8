"""``blobzero strength``: how strong each published version is, measured as training goes.

Every published version is archived by the trainer as ``<checkpoint_dir>/versions/vNNNNNN.onnx``
(a directory or a bucket: everything here is read and written through plumbing/storage.py, so
the tracker runs anywhere with ``--set storage.url=s3://…``, no shared volume)
with a manifest ``vNNNNNN.json`` saying what it was trained on (trainer step, self-play rounds
ingested, publish time). The watcher (``--watch``, what ``blobzero loop`` runs beside
self-play) measures the newest unmeasured version against built-in players on duplicate
deals — one tested seat against the field (arena lineup ``solo``), seats rotated, 95% CI —
skipping versions that were superseded while it was busy, so it never falls behind, and runs
niced with one thread so it does not starve self-play on a small machine.

Results are one JSON object per (version, opponent) in ``strength.json`` beside the
checkpoints (``<checkpoint_dir>/../strength.json``, i.e. ``<storage.url>/strength.json``;
rewritten crash-safely after each measurement), exported as Prometheus gauges and drawn as
``learning_curve.png``: score difference against minutes of training and against self-play
rounds, with CI bars.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from plumbing import config as configuration
from plumbing.model_repository import ModelVersions, archive_key
from plumbing.storage import Store, as_location, join, locations, open_store, parent

DEFAULT_OPPONENTS = ("greedy", "expert")
RESULTS = "strength.json"
CURVE = "learning_curve.png"
WORLD_CURVE = "world_curve.png"     # the world-value model's losses (plot_world)


def parse_opponents(spec: str, cfg: configuration.Config) -> tuple[str, ...]:
    """``"greedy,expert"`` -> agent names, each checked; ValueError names an unknown one."""
    from blobzero.arena import resolve_agent
    names = tuple(o.strip() for o in spec.split(",") if o.strip())
    if not names:
        raise ValueError("name at least one opponent")
    for name in names:
        resolve_agent(name, cfg)
    return names


def archive_dir(cfg: configuration.Config) -> str:
    """The trainer's archive of published versions (a directory or an ``s3://`` URL)."""
    return locations(cfg.storage).archive


def results_location(cfg: configuration.Config) -> str:
    """Where the tracker keeps its results: ``strength.json`` beside the checkpoints."""
    return join(locations(cfg.storage).results, RESULTS)


def manifests(archive: Store | str | os.PathLike, known: dict[int, dict] | None = None) -> dict[int, dict]:
    """version -> manifest for every archived version that has its ONNX file. Versions in
    ``known`` are taken from it instead of being read again, and the listing starts after the
    newest of them (a watcher polls every few seconds while the archive grows to thousands of
    versions: O(new) per poll, in a directory or a bucket)."""
    store = archive if isinstance(archive, Store) else open_store(archive)
    out = dict(known or {})
    keys = {e.key for e in store.list("v", start_after=archive_key(max(out)) if out else "")}
    for key in sorted(keys):
        stem, _, suffix = key.partition(".")
        if suffix != "json" or not stem[1:].isdigit() or int(stem[1:]) in out:
            continue
        try:
            data = json.loads(store.get(key))
            version = int(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            continue                              # being written, or not ours: skip
        if archive_key(version) in keys or store.exists(archive_key(version)):
            out[version] = data
    return out


def match(cfg: configuration.Config, agent, opponent: str, deals: int, seed: int = 4242,
          threads: int = 1) -> dict:
    """The tracker's match: ``agent`` in one seat against ``opponent`` in the rest, every seat
    in turn, at the arena's table with the arena's search; the arena's report.
    ``threads``: ONNX Runtime intra-op threads of the model's evaluator."""
    from blobzero.arena import arena_search, play, resolve_agent
    from blobzero.learned_beliefs import configured_belief_model
    from selfplay_client.world_values import configured_world_values

    n_players, cards = cfg.arena_table()
    return play(agent, resolve_agent(opponent, cfg), deals=deals, n_players=n_players, cards=cards,
                search=arena_search(cfg), seed=seed, games_in_flight=cfg.arena.games_in_flight,
                lineup="solo", intra_op_threads=threads, worlds=configured_world_values(cfg, threads),
                beliefs=configured_belief_model(cfg))


def _result(report: dict) -> dict:
    """The fields of a point that come from the match's report (``per_deal`` is kept in memory
    for paired comparisons, not saved: ``save_results``)."""
    return {key: report[key] for key in ("difference", "ci95", "a_mean_score", "b_mean_score", "deals",
                                         "search", "seconds", "per_deal")}


def measure(cfg: configuration.Config, version: int, manifest: dict, opponents: list[str],
            deals: int, start_unix: float | None, seed: int = 4242, threads: int = 1) -> list[dict]:
    """Play ``version`` (alone) against each opponent (the rest of the table); one point each."""
    from blobzero.arena import Agent

    # a local file for ONNX Runtime: the archive's own in a directory, a cached copy from a bucket
    agent = Agent(f"v{version}", ModelVersions.from_config(cfg.storage).path(version), version=version)
    published = manifest.get("published_unix")
    minutes = (None if start_unix is None or published is None
               else round((published - start_unix) / 60, 3))
    return [{"version": version, "opponent": name, "minutes": minutes,
             "rounds": manifest.get("rounds_seen"), "step": manifest.get("step"),
             **_result(match(cfg, agent, name, deals, seed, threads))} for name in opponents]


#: The version number of the baseline point: the same search with no network (``uniform``).
UNIFORM_VERSION = 0


def measure_uniform(cfg: configuration.Config, opponents: list[str], deals: int,
                    seed: int = 4242, threads: int = 1) -> list[dict]:
    """The baseline every version is judged beside: the configured search with no network
    (``blobzero arena --a uniform``) against each opponent, on the deals versions are measured
    on; points with ``version`` 0 and ``agent`` "uniform"."""
    from blobzero.arena import resolve_agent

    uniform = resolve_agent("uniform", cfg)
    return [{"version": UNIFORM_VERSION, "agent": "uniform", "opponent": name, "minutes": None,
             "rounds": None, "step": None, **_result(match(cfg, uniform, name, deals, seed, threads))}
            for name in opponents]


def contribution(cfg: configuration.Config, final: dict, deals: int, seed: int = 4242,
                 threads: int = 1) -> dict:
    """What training added, on the first ``deals`` of the deals ``final`` (a point of
    ``measure``, with its per-deal results) was measured on: the same search with the run's
    version 1 and with no network at all (``uniform``) against the same opponent, and the final
    version's paired difference to each on those deals (95% CI over deals). Returns
    {"opponent", "deals", "rows": [...], "table": str}."""
    from blobzero.arena import Agent, mean_ci, resolve_agent

    opponent = final["opponent"]
    deals = min(deals, len(final["per_deal"]))
    final_deals = final["per_deal"][:deals]            # the same seeds: seed, seed + 1, ...
    baselines = [("v1", Agent("v1", ModelVersions.from_config(cfg.storage).path(1), version=1)),
                 ("uniform", resolve_agent("uniform", cfg))]
    own, own_ci = mean_ci(final_deals)                 # the final version on those deals alone
    rows = [{"agent": f"v{final['version']}", "difference": own, "ci95": list(own_ci), "paired": None}]
    for name, agent in baselines:
        if name == "v1" and final["version"] == 1:
            continue
        report = match(cfg, agent, opponent, deals, seed, threads)
        gain, ci = mean_ci([f - b for f, b in zip(final_deals, report["per_deal"])])
        rows.append({"agent": name, "difference": report["difference"], "ci95": report["ci95"],
                     "paired": {"final_minus_this": gain, "ci95": list(ci),
                                "significant": ci[0] > 0 or ci[1] < 0}})
    lines = [f"what training added (vs {opponent}, paired on the first {deals} of those deals, "
             f"search {final['search']}):",
             f"{'agent':<10}{'vs ' + opponent + ' [95% CI]':>28}{'final minus it [95% CI]':>30}"]
    for row in rows:
        lo, hi = row["ci95"]
        paired = ""
        if row["paired"]:
            p = row["paired"]
            paired = f"{p['final_minus_this']:+.2f} [{p['ci95'][0]:+.2f}, {p['ci95'][1]:+.2f}]" + \
                     ("*" if p["significant"] else " ")
        lines.append(f"{row['agent']:<10}{row['difference']:+11.2f} [{lo:+.2f}, {hi:+.2f}]"
                     f"{paired:>30}")
    untrained_worlds = cfg.worlds.model == "version" and cfg.uses_world_values()
    lines.append("uniform = the same search with no network (every prior equal, every value the same"
                 + ("; its world values version 1's untrained world model" if untrained_worlds else "")
                 + "); * = 95% CI excludes 0")
    return {"opponent": opponent, "deals": deals, "rows": rows, "table": "\n".join(lines)}


def remeasure(cfg: configuration.Config, out: str | os.PathLike, versions: list[int], found: dict[int, dict],
              opponents: list[str], deals: int, threads: int = 1, log=None) -> list[dict]:
    """Measure ``versions`` (archived, manifests in ``found``) afresh, replace their points in
    the results file ``out`` (saved crash-safely) and return every point in it."""
    points = [p for p in load_results(out) if p["version"] not in versions]
    start = found[min(found)]["published_unix"]
    for v in versions:
        for point in measure(cfg, v, found[v], opponents, deals, start, threads=threads):
            points.append(point)
            if log is not None:
                lo, hi = point["ci95"]
                log(f"v{v} vs {point['opponent']}: {point['difference']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    points.sort(key=lambda p: (p["version"], p["opponent"]))
    save_results(out, points)
    return points


def _file(location: str | os.PathLike) -> tuple[Store, str]:
    """The store holding a file location (a path or ``s3://bucket/key``) and its key there."""
    return open_store(parent(location)), str(location).rstrip("/").rpartition("/")[2]


def load_results(location: str | os.PathLike) -> list[dict]:
    """The points in a results file: [] when there is none yet. A file that cannot be read
    now (the bucket unreachable, permissions) raises OSError: starting from nothing would let
    the next save overwrite the history. A damaged file is set aside as ``<name>.damaged``
    (kept, never overwritten) and the results start afresh, with a warning."""
    store, key = _file(location)
    try:
        blob = store.get(key)
    except FileNotFoundError:
        return []
    try:
        points = json.loads(blob)["points"]
        if not isinstance(points, list):
            raise TypeError("points is not a list")
        return points
    except (ValueError, KeyError, TypeError) as exc:
        store.put(key + ".damaged", blob)
        print(f"strength: {location} is damaged ({exc}); kept as {key}.damaged, starting afresh",
              file=sys.stderr)
        return []


def save_results(location: str | os.PathLike, points: list[dict]) -> None:
    """Write the points crash-safely (temporary name + fsync + rename, or one PUT)."""
    store, key = _file(location)
    kept = [{k: v for k, v in p.items() if k != "per_deal"} for p in points]
    store.put(key, json.dumps({"points": kept}, indent=1).encode())


def save_file(location: str | os.PathLike, data: bytes) -> Path | str:
    """Write a file of the results (the curve, the loop's report) crash-safely; returns it."""
    store, key = _file(location)
    store.put(key, data)
    return as_location(location)


class StrengthMetrics:
    """Prometheus gauges of the newest measurement per opponent."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Gauge
        self.registry = CollectorRegistry()
        self.difference = Gauge("blobzero_strength_score_difference",
                                "Score per round of the newest measured version minus the field's "
                                "(duplicate deals, one seat vs the rest)", ["opponent"], registry=self.registry)
        self.ci_low = Gauge("blobzero_strength_ci95_low", "Lower end of the 95% CI of the difference",
                            ["opponent"], registry=self.registry)
        self.ci_high = Gauge("blobzero_strength_ci95_high", "Upper end of the 95% CI of the difference",
                             ["opponent"], registry=self.registry)
        self.version = Gauge("blobzero_strength_version", "Model version of the newest measurement",
                             registry=self.registry)

    def update(self, point: dict) -> None:
        if point["version"] == UNIFORM_VERSION:     # the no-network baseline is not a version
            return
        self.difference.labels(point["opponent"]).set(point["difference"])
        self.ci_low.labels(point["opponent"]).set(point["ci95"][0])
        self.ci_high.labels(point["opponent"]).set(point["ci95"][1])
        self.version.set(point["version"])

    def serve(self, host: str, port: int):
        from plumbing.metrics_http import serve
        return serve(self.registry, host, port, "metrics.strength_port")


def watch(cfg: configuration.Config, out: str | os.PathLike, opponents: list[str], deals: int,
          stop: threading.Event, poll_s: float = 2.0, metrics: StrengthMetrics | None = None,
          final_deals: int = 0, log=print) -> list[dict]:
    """Measure the newest unmeasured version until ``stop`` is set; then, if ``final_deals``,
    measure the newest version once more with that many deals. Returns all points."""
    points = load_results(out)
    measured = {p["version"] for p in points}
    archive = open_store(archive_dir(cfg))
    if metrics is not None and points:          # a restarted watcher shows what it knew
        newest = max(measured)
        for point in points:
            if point["version"] == newest:
                metrics.update(point)

    def record(new: list[dict]) -> None:
        points.extend(new)
        points.sort(key=lambda p: (p["version"], p["opponent"]))
        save_results(out, points)
        for point in new:
            if metrics is not None:
                metrics.update(point)
            lo, hi = point["ci95"]
            who = "uniform (no network)" if point["version"] == UNIFORM_VERSION else f"v{point['version']}"
            log(f"strength {who} vs {point['opponent']}: {point['difference']:+.2f} "
                f"[{lo:+.2f}, {hi:+.2f}] ({point['deals']} deals, {point['seconds']} s)")

    if not any(p["version"] == UNIFORM_VERSION for p in points):
        try:                                 # the baseline the versions are drawn beside
            record(measure_uniform(cfg, opponents, deals))
        except OSError as exc:
            log(f"strength: could not save the no-network baseline ({exc})")
    found: dict[int, dict] = {}
    while not stop.is_set():
        try:
            found = manifests(archive, found)
        except OSError as exc:               # a bucket's endpoint is down: next poll
            log(f"strength: cannot list {archive.url} ({exc}); retrying")
            stop.wait(max(poll_s, 5.0))
            continue
        start = found[min(found)]["published_unix"] if found else None
        newest = max(found) if found else None
        if newest is None or newest in measured:
            stop.wait(poll_s)
            continue
        try:
            record(measure(cfg, newest, found[newest], opponents, deals, start))
        except OSError as exc:               # the results or the model could not be stored/read
            log(f"strength: measuring v{newest} failed ({exc}); retrying")
            stop.wait(max(poll_s, 5.0))
            continue
        measured.add(newest)
    if final_deals:
        found = manifests(archive, found)
        if found:
            newest = max(found)
            start = found[min(found)]["published_unix"]
            points[:] = [p for p in points if p["version"] != newest]
            record(measure(cfg, newest, found[newest], opponents, final_deals, start))
    return points


TREND_POINTS = 8    # a trend line pools this many consecutive measurements (1,600 deals at 200)


def trend(series: list[dict], window: int = TREND_POINTS) -> list[float]:
    """Running mean of ``series``' differences over the last ``window`` points (fewer at the
    start), each point weighted by its deals: one 200-deal point has a 95% CI of about ±0.45
    points per round, so a curve's trend of a few tenths only shows once points are pooled."""
    out = []
    for i in range(len(series)):
        part = series[max(0, i - window + 1):i + 1]
        weights = [max(1, int(p.get("deals") or 1)) for p in part]
        out.append(sum(w * p["difference"] for w, p in zip(weights, part)) / sum(weights))
    return out


def _save_png(fig, path: str | os.PathLike) -> Path | str:
    """Write a matplotlib figure as a PNG crash-safely (``save_file``) and close it."""
    import io

    from matplotlib import pyplot as plt
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return save_file(path, buffer.getvalue())


def plot(points: list[dict], path: str | os.PathLike, title: str = "") -> Path | str | None:
    """Draw the learning curve (score difference vs minutes and vs self-play rounds, 95% CI
    bars, one line per opponent) as a PNG; returns the path, or None without points. With more
    than ``TREND_POINTS`` points per opponent the bars fade and a trend line (``trend``) is
    drawn over them."""
    if not points:
        return None
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for axis, key, label in ((axes[0], "minutes", "minutes of training"),
                             (axes[1], "rounds", "self-play rounds trained on")):
        for opponent in sorted({p["opponent"] for p in points}):
            series = sorted((p for p in points if p["opponent"] == opponent and p.get(key) is not None),
                            key=lambda p: p[key])
            if not series:
                continue
            x = [p[key] for p in series]
            y = [p["difference"] for p in series]
            err = [[p["difference"] - p["ci95"][0] for p in series],
                   [p["ci95"][1] - p["difference"] for p in series]]
            many = len(series) > TREND_POINTS
            bars = axis.errorbar(x, y, yerr=err, marker="o", capsize=3, alpha=0.35 if many else 1.0,
                                 markersize=4 if many else 6, label=None if many else f"vs {opponent}")
            if many:
                axis.plot(x, trend(series), color=bars[0].get_color(), linewidth=2.5,
                          label=f"vs {opponent} (mean of last {TREND_POINTS})")
            for base in (p for p in points if p["version"] == UNIFORM_VERSION and p["opponent"] == opponent):
                axis.axhline(base["difference"], color=bars[0].get_color(), linestyle="--", linewidth=1.2,
                             label=f"vs {opponent}, no network")
        axis.axhline(0, color="grey", linewidth=0.8)
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("score/round: model seat − field (95% CI)")
    axes[0].legend(loc="lower right")
    fig.suptitle(title or "BlobZero learning curve (1 model seat vs 3 of the opponent, duplicate deals)")
    fig.tight_layout()
    return _save_png(fig, path)


def plot_world(found: dict[int, dict], path: str | os.PathLike) -> Path | str | None:
    """Draw the world-value model's learning curve (trainer.world_value) from the versions'
    manifests: its held-out loss (each new shard's worlds before it trained on them) and its
    training loss, against the self-play rounds trained on; returns the path, or None when no
    manifest carries them."""
    rows = sorted((m["rounds_seen"], m.get("world_new_loss"), m.get("world_loss"))
                  for m in found.values() if m.get("world_loss") is not None and "rounds_seen" in m)
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axis = plt.subplots(figsize=(6.5, 4.2))
    held = [(r, new) for r, new, _ in rows if new is not None]
    if held:
        axis.plot(*zip(*held), marker="o", markersize=3, label="held out (new shards, before training on them)")
    axis.plot([r for r, _, _ in rows], [t for _, _, t in rows], linestyle="--", label="training batches")
    axis.set_xlabel("self-play rounds trained on")
    axis.set_ylabel("mean squared error per seat (normalised score)")
    axis.grid(alpha=0.3)
    axis.legend(loc="upper right")
    fig.suptitle("World value learned inside the loop (labelled worlds: play-outs, or the rounds' own deals)")
    fig.tight_layout()
    return _save_png(fig, path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--watch", action="store_true",
                        help="keep measuring the newest published version until SIGTERM")
    parser.add_argument("--versions", default="",
                        help="comma-separated versions to measure once (default: the newest)")
    parser.add_argument("--opponents", default=",".join(DEFAULT_OPPONENTS),
                        help="built-in opponents (default: %(default)s)")
    parser.add_argument("--deals", type=int, default=200, help="duplicate deals per measurement")
    parser.add_argument("--final-deals", type=int, default=0,
                        help="with --watch: on SIGTERM, measure the newest version with this many deals")
    parser.add_argument("--out", help=f"results file, a path or s3://bucket/key (default: "
                                      f"<checkpoint_dir>/../{RESULTS})")
    parser.add_argument("--plot", help=f"also draw the curve here (e.g. {CURVE}; a path or s3://…)")
    parser.add_argument("--nice", type=int, default=0, help="lower this process's CPU priority by N")


def main(args: argparse.Namespace) -> int:
    cfg = configuration.from_args_or_exit(args, "strength")
    try:
        opponents = list(parse_opponents(args.opponents, cfg))
    except ValueError as exc:
        print(f"blobzero strength: {exc}", file=sys.stderr)
        return 2
    if args.nice:
        os.nice(args.nice)
    out = args.out or results_location(cfg)
    if args.watch:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        metrics = StrengthMetrics()
        try:
            metrics.serve(cfg.metrics.host, cfg.metrics.strength_port)
        except configuration.ConfigError as exc:      # a taken port: say which key chose it
            print(f"blobzero strength: {exc}", file=sys.stderr)
            return 2
        points = watch(cfg, out, opponents, args.deals, stop, metrics=metrics,
                       final_deals=args.final_deals, log=lambda line: print(line, flush=True))
    else:
        found = manifests(archive_dir(cfg))
        if not found:
            print(f"blobzero strength: no published versions in {archive_dir(cfg)}", file=sys.stderr)
            return 2
        wanted = [int(v) for v in args.versions.split(",") if v.strip()] or [max(found)]
        missing = [v for v in wanted if v not in found]
        if missing:
            print(f"blobzero strength: versions {missing} are not archived in {archive_dir(cfg)}",
                  file=sys.stderr)
            return 2
        points = remeasure(cfg, out, wanted, found, opponents, args.deals, log=print)
    if args.plot:
        plot(points, args.plot)
    return 0
