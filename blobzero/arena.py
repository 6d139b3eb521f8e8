"""``blobzero arena``: agent A against agent B on duplicate deals, seats rotated.

Every deal is played several times with the same cards, dealer and trump, and the seats
rotated, so the luck of the deal cancels. Two lineups: ``alternate`` (A and B alternate
around the table, the pattern rotated one seat each time) and ``solo`` (A in one seat against
N-1 copies of B, once from every seat: "one tested seat against the field"). Per deal, the difference is A's mean score per round minus B's; the report
gives its mean with a 95% confidence interval over deals.

Agents: ``random`` (uniformly random legal play), ``greedy`` (the built-in heuristic), ``expert``
(the card-counting rule-based player, docs/players.md), ``v<N>`` (version N from the model
repository, or the trainer's archive of published versions), ``latest``, or a path to an
ONNX file. Model agents search (evaluation mode: no noise, most-visited move) with
in-process ONNX Runtime.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from blobcore.mcts import AGENT_EXPERT, AGENT_GREEDY, AGENT_RANDOM
from blobcore.search_config import PRESETS, SearchConfig
from plumbing import config as configuration
from plumbing.netspec import MODEL_NAME, ONNX_FILENAME


@dataclass(frozen=True)
class Agent:
    """A model (``onnx``) that searches, or a built-in player (``builtin``, no search)."""
    name: str
    onnx: Path | None = None
    builtin: int = AGENT_RANDOM     # used when onnx is None: AGENT_RANDOM, AGENT_GREEDY or AGENT_EXPERT


BUILTIN = {"random": AGENT_RANDOM, "greedy": AGENT_GREEDY, "expert": AGENT_EXPERT}


def resolve_agent(spec: str, cfg: configuration.Config) -> Agent:
    """Turn an agent spec into an Agent; raises ValueError saying what was not found."""
    if spec in BUILTIN:
        return Agent(spec, None, BUILTIN[spec])
    repo = Path(cfg.storage.model_repository) / MODEL_NAME
    archive = Path(cfg.storage.checkpoint_dir) / "versions"
    if spec == "latest":
        versions = sorted(int(p.name) for p in repo.glob("[0-9]*") if p.name.isdigit())
        if not versions:
            raise ValueError(f"no model versions in {repo}")
        spec = f"v{versions[-1]}"
    match = re.fullmatch(r"v(?:ersion)?:?(\d+)", spec)
    if match:
        n = int(match[1])
        for candidate in (repo / str(n) / ONNX_FILENAME, archive / f"v{n:06d}.onnx"):
            if candidate.is_file():
                return Agent(f"v{n}", candidate)
        raise ValueError(f"model version {n} is neither in {repo} nor archived in {archive}")
    path = Path(spec)
    if path.suffix == ".onnx" and path.is_file():
        return Agent(path.stem, path)
    raise ValueError(f"unknown agent {spec!r}: use random, greedy, expert, latest, v<N> or a path to an "
                     f".onnx file")


def arena_search(cfg: configuration.Config, preset: str | None = None) -> SearchConfig:
    """The arena's search: a preset (default ``arena.search_preset``) in the configured
    perspective — a network trained for one perspective is judged searching in it."""
    return dataclasses.replace(PRESETS[preset or cfg.arena.search_preset],
                               perspective=cfg.search.perspective)


LINEUPS = ("alternate", "solo")


def seat_patterns(n_players: int, lineup: str = "alternate") -> list[tuple[int, ...]]:
    """Seat assignments (0 = A, 1 = B) for one deal. alternate: A and B alternate, rotated by
    one seat each time (with an even table two rotations already cover every seat); solo: A
    alone in seat r against N-1 B's, for every r."""
    if lineup == "solo":
        return [tuple(0 if seat == r else 1 for seat in range(n_players)) for r in range(n_players)]
    if lineup != "alternate":
        raise ValueError(f"unknown lineup {lineup!r}; choose one of {LINEUPS}")
    base = tuple(i % 2 for i in range(n_players))
    rotations = 2 if n_players % 2 == 0 else n_players
    return [base[-r:] + base[:-r] if r else base for r in range(rotations)]


def play(a: Agent, b: Agent, deals: int, n_players: int = 4, cards: int = 5,
         search: SearchConfig | None = None, seed: int = 0, games_in_flight: int = 256,
         intra_op_threads: int = 1, lineup: str = "alternate") -> dict:
    """Play the match; returns the report dict (see ``format_report``)."""
    from selfplay_client.evaluator import OrtEvaluator
    from selfplay_client.runner import PooledSearch

    search = (search or PRESETS["light"]).for_evaluation()
    evaluators, index = [], {}
    for agent in (a, b):
        if agent.onnx is not None and agent.onnx not in index:
            index[agent.onnx] = len(evaluators)
            evaluators.append(OrtEvaluator(agent.onnx, intra_op_threads=intra_op_threads))
    agent_id = [index[agent.onnx] if agent.onnx is not None else agent.builtin for agent in (a, b)]
    patterns = seat_patterns(n_players, lineup)
    specs = []
    for deal in range(deals):
        for p, pattern in enumerate(patterns):
            agents = tuple(agent_id[side] for side in pattern)
            specs.append((seed + deal, n_players, cards, -1, -1, agents, (deal, p)))
    started = time.perf_counter()
    runner = PooledSearch(evaluators or [_NoEvaluator()], search, specs,
                          n_games=min(games_in_flight, len(specs)))
    runner.run()
    per_deal: dict[int, list[float]] = {}
    totals = {0: [0.0, 0], 1: [0.0, 0]}
    for record in runner.finished():
        deal, p = record["tag"]
        pattern = patterns[p]
        side_scores = {0: [], 1: []}
        for seat, score in enumerate(record["scores"]):
            side_scores[pattern[seat]].append(score)
        for side in (0, 1):
            totals[side][0] += sum(side_scores[side])
            totals[side][1] += len(side_scores[side])
        diff = sum(side_scores[0]) / len(side_scores[0]) - sum(side_scores[1]) / len(side_scores[1])
        per_deal.setdefault(deal, []).append(diff)
    diffs = [sum(v) / len(v) for v in per_deal.values()]
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else float("inf")
    half = 1.96 * sd / math.sqrt(n)
    return {
        "a": a.name, "b": b.name, "deals": n, "plays_per_deal": len(patterns), "lineup": lineup,
        "players": n_players, "cards": cards,
        "search": f"{search.determinizations}x{search.simulations}",
        "a_mean_score": totals[0][0] / totals[0][1], "b_mean_score": totals[1][0] / totals[1][1],
        "difference": mean, "ci95": [mean - half, mean + half],
        "significant": (mean - half) > 0 or (mean + half) < 0,
        "seconds": round(time.perf_counter() - started, 1),
    }


class _NoEvaluator:
    """Both agents built-in: the pool never asks for an evaluation."""

    def evaluate(self, states, masks):
        raise RuntimeError("no model agent in this match")


def format_report(r: dict) -> str:
    verdict = "significant" if r["significant"] else "not significant"
    lineup = f"1 {r['a']} vs {r['players'] - 1} {r['b']}" if r.get("lineup") == "solo" else "alternating"
    return (f"{r['a']} vs {r['b']}: {r['deals']} deals x {r['plays_per_deal']} seatings ({lineup}), "
            f"{r['players']} players, {r['cards']} cards, search {r['search']}\n"
            f"  mean score/round  {r['a']}: {r['a_mean_score']:.2f}   {r['b']}: {r['b_mean_score']:.2f}\n"
            f"  difference {r['difference']:+.2f}  95% CI [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
            f"  ({verdict}, {r['seconds']} s)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--a", required=True, help="agent A: random, greedy, expert, latest, v<N> or path.onnx")
    parser.add_argument("--b", default="random", help="agent B (default: random)")
    parser.add_argument("--rounds", type=int, default=0, help="duplicate deals (default: arena.rounds)")
    parser.add_argument("--search", choices=sorted(PRESETS), help="search preset (default: arena.search_preset)")
    parser.add_argument("--lineup", choices=LINEUPS, default="alternate",
                        help="alternate A and B around the table, or solo: one A against N-1 B's "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1_000_003)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main(args: argparse.Namespace) -> int:
    try:
        cfg = configuration.from_args(args)
        a, b = resolve_agent(args.a, cfg), resolve_agent(args.b, cfg)
    except (configuration.ConfigError, ValueError) as exc:
        print(f"blobzero arena: {exc}", file=sys.stderr)
        return 2
    report = play(a, b, deals=args.rounds or cfg.arena.rounds, n_players=cfg.table.players,
                  cards=cfg.table.cards_max, search=arena_search(cfg, args.search),
                  seed=args.seed, games_in_flight=cfg.arena.games_in_flight, lineup=args.lineup)
    print(json.dumps(report) if args.json else format_report(report))
    return 0
