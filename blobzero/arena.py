"""``blobzero arena``: agent A against agent B on duplicate deals (or full games), seats rotated.

Every deal is played several times with the same cards, dealer and trump, and the seats
rotated, so the luck of the deal cancels. Two lineups: ``alternate`` (A and B alternate
around the table, the pattern rotated one seat each time) and ``solo`` (A in one seat against
N-1 copies of B, once from every seat: "one tested seat against the field"). Per deal, the difference is A's mean score per round minus B's; the report
gives its mean with a 95% confidence interval over deals. ``--games`` plays duplicate full
games instead (the whole schedule of deal sizes, dealer and trump rotating, cumulative scores):
the report gives the difference in total score per game and each side's win rate.

Agents: ``random`` (uniformly random legal play), ``greedy`` (the built-in heuristic), ``expert``
(the card-counting rule-based player, docs/players.md), ``v<N>`` (version N from the model
repository, or the trainer's archive of published versions: directories or a bucket, read
through plumbing/storage.py, a bucket's versions copied into the bounded local cache in the
temporary directory), ``latest`` (``latest~N``: N versions before it), or a path to an ONNX
file. Model agents search (evaluation mode: no noise, most-visited move) with
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

from blobcore.players import AGENT_RANDOM, PLAYERS
from blobcore.search_config import PLAIN, SIZES, SearchConfig
from plumbing import config as configuration
from plumbing.model_repository import ModelVersions


#: The agent spec of the search on a uniform evaluator (every prior equal, every value the
#: same): what the search earns without any network, beside which a model shows what its
#: training added.
UNIFORM = "uniform"


@dataclass(frozen=True)
class Agent:
    """A model (``onnx``) that searches, the same search with no network (``uniform``), or a
    built-in player (``builtin``, no search). With ``cards`` set it is a split agent: it bids,
    and ``cards`` plays the cards."""
    name: str
    onnx: Path | None = None
    builtin: int = AGENT_RANDOM     # used when it does not search: a blobcore.players code
    cards: "Agent | None" = None
    uniform: bool = False
    version: int | None = None      # the model version ``onnx`` is (v<N> specs)

    def parts(self) -> tuple["Agent", ...]:
        """The single agents this one is made of (itself, or its bidder and card player)."""
        return (self,) if self.cards is None else (dataclasses.replace(self, cards=None), self.cards)

    @property
    def searches(self) -> bool:
        return self.onnx is not None or self.uniform


def split_agent(bids: Agent, cards: Agent) -> Agent:
    """An agent that bids like ``bids`` and plays its cards like ``cards`` (a diagnostic:
    which phase loses the points)."""
    return dataclasses.replace(bids, name=f"{bids.name}(bids)+{cards.name}(cards)", cards=cards)


def resolve_agent(spec: str, cfg: configuration.Config) -> Agent:
    """Turn an agent spec into an Agent; raises ValueError saying what was not found."""
    if spec in PLAYERS:
        return Agent(spec, None, PLAYERS[spec].code)
    if spec == UNIFORM:
        return Agent(UNIFORM, uniform=True)
    models = ModelVersions.from_config(cfg.storage)
    back = re.fullmatch(r"latest(?:~(\d+))?", spec)
    if back:                             # latest~N: N versions before the newest (from a script)
        try:
            latest = models.latest()
        except OSError as exc:           # a bucket that cannot be listed
            raise ValueError(f"cannot list the model versions in {models.repository.url}: "
                             f"{exc}") from None
        if latest is None:
            raise ValueError(f"no model versions in {models.repository.url}")
        if latest - int(back[1] or 0) < 1:
            raise ValueError(f"{spec}: the newest version is v{latest}, so there is no version "
                             f"{back[1]} before it")
        spec = f"v{latest - int(back[1] or 0)}"
    match = re.fullmatch(r"v(?:ersion)?:?(\d+)", spec)
    if match:
        n = int(match[1])
        try:
            return Agent(f"v{n}", models.path(n), version=n)     # ValueError naming both places
        except OSError as exc:           # a bucket that cannot be read
            raise ValueError(f"cannot read model version {n}: {exc}") from None
    path = Path(spec)
    if path.suffix == ".onnx" and path.is_file():
        return Agent(path.stem, path)
    raise ValueError(f"unknown agent {spec!r}: use {', '.join(PLAYERS)}, {UNIFORM} (the search with no "
                     f"network), latest, latest~N, v<N> or a path to an .onnx file")


def arena_search(cfg: configuration.Config, preset: str | None = None) -> SearchConfig:
    """The arena's search: the configured ``[search]`` (perspective, play-outs, beliefs, …)
    in its evaluation variant (no noise, the best move) at the size of a preset (default
    ``arena.search_preset``) — a network is judged searching the way it was trained to. Every
    command that measures or serves a model uses this."""
    return cfg.search.build(for_evaluation=True, preset=preset or cfg.arena.search_preset)


def _match_search(agents, search: SearchConfig | None) -> SearchConfig:
    """The search model seats use in a match: ``search`` as given, which must be an evaluation
    search (``arena_search``); None only when no seat searches."""
    if search is None:
        if any(part.searches for agent in agents for part in agent.parts()):
            raise ValueError("a match with a model seat needs its search: arena_search(cfg)")
        return PLAIN.for_evaluation()          # nobody searches: only its size is read
    if search.add_noise or search.temperature > 0:
        raise ValueError("a match plays to win: pass an evaluation search (arena_search(cfg), "
                         "or SearchConfig.for_evaluation()), not a self-play one")
    return search


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


def deal_differences(records, patterns) -> tuple[list[float], dict[int, list]]:
    """From finished records tagged ``(deal, seating)`` (seatings of ``patterns``): A's mean
    score minus B's per deal, averaged over the deal's seatings, in deal order; and each
    side's [total score, seats played]."""
    per_deal: dict[int, list[float]] = {}
    totals = {0: [0.0, 0], 1: [0.0, 0]}
    for record in records:
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
    return [sum(v) / len(v) for _, v in sorted(per_deal.items())], totals


def play(a: Agent, b: Agent, deals: int, n_players: int = 4, cards: int = 5,
         search: SearchConfig | None = None, seed: int = 0, games_in_flight: int = 256,
         intra_op_threads: int = 1, lineup: str = "alternate", worlds=None, beliefs=None) -> dict:
    """Play the match; returns the report dict (see ``format_report``). ``search``: the model
    seats' evaluation search (``arena_search``); ``worlds`` and ``beliefs``: its world values and
    belief model when it uses them (``pool_agents``)."""
    from selfplay_client.evaluator import OrtEvaluator
    from selfplay_client.runner import PooledSearch

    search = _match_search((a, b), search)
    evaluators, agent_id = pool_agents((a, b), intra_op_threads, worlds, beliefs)
    patterns = seat_patterns(n_players, lineup)
    specs = []
    for deal in range(deals):
        for p, pattern in enumerate(patterns):
            agents = tuple(agent_id[side] for side in pattern)
            specs.append((seed + deal, n_players, cards, -1, -1, agents, (deal, p)))
    started = time.perf_counter()
    runner = PooledSearch(evaluators, search, specs, n_games=min(games_in_flight, len(specs)))
    runner.run()
    deal_means, totals = deal_differences(runner.finished(), patterns)
    mean, (low, high) = mean_ci(deal_means)
    return {
        "a": a.name, "b": b.name, "deals": len(deal_means), "plays_per_deal": len(patterns),
        "per_deal": deal_means,     # A's mean score minus B's per deal, in deal order (paired fits)
        "lineup": lineup, "players": n_players, "cards": cards,
        "search": f"{search.determinizations}x{search.simulations}",
        "a_mean_score": totals[0][0] / totals[0][1], "b_mean_score": totals[1][0] / totals[1][1],
        "difference": mean, "ci95": [low, high], "significant": low > 0 or high < 0,
        # network evaluations (batch rows: leaves, roots, inference) per round played, all
        # model seats of the round together: the compute the issue asks beside every figure
        "evaluations_per_round": round(runner.stats.positions / max(1, len(specs)), 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def mean_ci(values: list[float]) -> tuple[float, tuple[float, float]]:
    """Mean and normal-approximation 95% confidence interval (infinite with one value)."""
    n = len(values)
    if n == 0:
        raise ValueError("no results to summarise")
    mean = sum(values) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in values) / (n - 1)) if n > 1 else float("inf")
    half = 1.96 * sd / math.sqrt(n)
    return mean, (mean - half, mean + half)


def deal_sets(text: str) -> list[tuple[int, int]]:
    """``"4242:600,777:1000"`` -> [(4242, 600), (777, 1000)]: duplicate-deal sets as
    seed:deals (the issue tracker's standard 1,600 deals are exactly that)."""
    sets = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        seed, sep, deals = part.partition(":")
        if not sep or not seed.strip().lstrip("-").isdigit() or not deals.strip().isdigit() or int(deals) < 1:
            raise ValueError(f"deal set {part!r} is not SEED:DEALS (e.g. 4242:600)")
        sets.append((int(seed), int(deals)))
    if not sets:
        raise ValueError("no deal sets given")
    return sets


def solo_variants(variants: dict, deals: int, seed: int, n_players: int = 4, cards: int = 5,
                  opponent: int | None = None, log=None, sets: list[tuple[int, int]] | None = None,
                  per_deal_out: dict | None = None) -> dict:
    """Variants of one search, each in one seat against N - 1 ``opponent`` seats (a built-in
    player's code; default ``expert``), every seat in turn, on the same ``deals`` duplicate deals
    from ``seed`` (or the deal ``sets``, (seed, deals) pairs, pooled): what each part of the
    search is worth, side by side. ``variants``: name -> (SearchConfig, evaluator). One row per
    variant: its difference with its 95% CI, CPU ms per searched decision (this process, the
    evaluator included when it runs in it), evaluations per round and the search; every variant
    after the first also paired against the first. ``per_deal_out`` receives each variant's
    per-deal differences (for pooling or plotting)."""
    from blobcore.players import AGENT_EXPERT
    from selfplay_client.runner import PooledSearch
    opponent = AGENT_EXPERT if opponent is None else opponent
    patterns = seat_patterns(n_players, "solo")
    seeds = [first + d for first, count in (sets or [(seed, deals)]) for d in range(count)]
    specs = [(deal_seed, n_players, cards, -1, -1,
              tuple(0 if side == 0 else opponent for side in pattern), (d, p))
             for d, deal_seed in enumerate(seeds) for p, pattern in enumerate(patterns)]
    rows, per_deal = {}, {}
    for name, (search, evaluator) in variants.items():
        runner = PooledSearch(evaluator, search, specs, n_games=min(256, len(specs)), halves=1)
        started = time.process_time()
        stats = runner.run()
        cpu = time.process_time() - started
        per_deal[name] = deal_differences(runner.finished(), patterns)[0]
        mean, ci = mean_ci(per_deal[name])
        row = {"difference": round(mean, 3), "ci95": [round(ci[0], 3), round(ci[1], 3)],
               "cpu_ms_per_decision": round(cpu / max(stats.search["decisions"], 1) * 1e3, 3),
               "evaluations_per_round": round(stats.positions / len(specs), 1),
               "search": search.describe()}
        first = next(iter(per_deal))
        if name != first:
            gain, gci = mean_ci([a - b for a, b in zip(per_deal[name], per_deal[first])])
            row[f"minus_{first}"] = {"difference": round(gain, 3), "ci95": [round(gci[0], 3), round(gci[1], 3)],
                                     "significant": gci[0] > 0 or gci[1] < 0}
        rows[name] = row
        if log is not None:
            log({name: row})
    if per_deal_out is not None:
        per_deal_out.update(per_deal)
    return rows


def pool_agents(agents, intra_op_threads: int = 1, worlds=None, beliefs=None) -> tuple[list, list]:
    """Evaluators for the model agents among ``agents`` (one per distinct ONNX file) and each
    agent's SearchPool id: its evaluator index, or its built-in player code; a split agent
    gets the pair (bidding id, card play id). ``worlds``: a world-value source every evaluator
    also answers from (``selfplay_client.world_values.configured_world_values``; with
    ``worlds.model = "version"`` each model's own world-value model); ``beliefs``: a
    belief model file every evaluator also answers from
    (``blobzero.learned_beliefs.configured_belief_model``); None = none."""
    from blobzero.learned_beliefs import BeliefEvaluator
    from selfplay_client.world_values import with_world_values
    from selfplay_client.evaluator import OrtEvaluator, UniformEvaluator

    evaluators, index = [], {}
    for agent in agents:
        for part in agent.parts():
            key = UNIFORM if part.uniform else part.onnx
            if part.searches and key not in index:
                index[key] = len(evaluators)
                evaluator = (UniformEvaluator() if part.uniform else
                             OrtEvaluator(part.onnx, intra_op_threads=intra_op_threads))
                if beliefs is not None:
                    evaluator = BeliefEvaluator(evaluator, beliefs, threads=intra_op_threads)
                seat_worlds = worlds.for_agent(part) if hasattr(worlds, "for_agent") else worlds
                evaluators.append(with_world_values(evaluator, seat_worlds))

    def pool_id(part: Agent) -> int:
        if not part.searches:
            return part.builtin
        return index[UNIFORM if part.uniform else part.onnx]

    ids = [pool_id(a) if a.cards is None else (pool_id(a), pool_id(a.cards)) for a in agents]
    return evaluators or [_NoEvaluator()], ids


class _NoEvaluator:
    """Only built-in players: the pool never asks for an evaluation."""

    def evaluate(self, states, masks):
        raise RuntimeError("no model agent in this match")


def play_games(a: Agent, b: Agent, games: int, n_players: int = 4, start_cards: int = 5,
               search: SearchConfig | None = None, seed: int = 0, games_in_flight: int = 256,
               intra_op_threads: int = 1, lineup: str = "solo", worlds=None, beliefs=None) -> dict:
    """Duplicate full games: every deal set (game seed) is played once per seating of
    ``lineup``. Per game, A's seats' mean total score minus B's, averaged over the seatings of
    a deal set, gives ``difference`` with a 95% CI over deal sets; ``a_win_rate`` /
    ``b_win_rate`` are the chance that one A (B) seat wins a game (ties share the win), with
    CIs over deal sets; with ``solo`` on N seats an equal player wins 1/N of the games."""
    from selfplay_client.runner import PooledSearch
    from selfplay_client.tables import FullGames, GamePlan

    search = _match_search((a, b), search)
    evaluators, agent_id = pool_agents((a, b), intra_op_threads, worlds, beliefs)
    patterns = seat_patterns(n_players, lineup)
    plans = [GamePlan(n_players, start_cards, seed=seed + g, first_dealer=g % n_players,
                      agents=tuple(agent_id[side] for side in pattern), key=(g, p))
             for g in range(games) for p, pattern in enumerate(patterns)]
    feeder = FullGames(plans)
    started = time.perf_counter()
    PooledSearch(evaluators, search, feeder, n_games=min(games_in_flight, len(plans))).run()
    diff: dict[int, list[float]] = {}
    wins: dict[int, list[tuple[float, float]]] = {}
    totals = {0: [], 1: []}
    for result in feeder.results:
        g, p = result.plan.key
        pattern = patterns[p]
        share = {0: 0.0, 1: 0.0}
        for seat in result.winners:
            share[pattern[seat]] += 1.0 / len(result.winners)
        side_scores = {side: [sc for seat, sc in enumerate(result.scores) if pattern[seat] == side]
                       for side in (0, 1)}
        for side in (0, 1):
            totals[side] += side_scores[side]
        diff.setdefault(g, []).append(sum(side_scores[0]) / len(side_scores[0])
                                      - sum(side_scores[1]) / len(side_scores[1]))
        wins.setdefault(g, []).append((share[0] / len(side_scores[0]), share[1] / len(side_scores[1])))
    mean, (low, high) = mean_ci([sum(v) / len(v) for v in diff.values()])
    rate = {side: mean_ci([sum(w[side] for w in v) / len(v) for v in wins.values()])
            for side in (0, 1)}
    return {
        "a": a.name, "b": b.name, "mode": "games", "games": len(diff),
        "plays_per_game": len(patterns), "lineup": lineup, "players": n_players,
        "start_cards": start_cards, "rounds_per_game": len(feeder.results[0].round_scores),
        "search": f"{search.determinizations}x{search.simulations}",
        "a_mean_total": sum(totals[0]) / len(totals[0]),
        "b_mean_total": sum(totals[1]) / len(totals[1]),
        "difference": mean, "ci95": [low, high], "significant": low > 0 or high < 0,
        "a_win_rate": rate[0][0], "a_win_ci95": list(rate[0][1]),
        "b_win_rate": rate[1][0], "b_win_ci95": list(rate[1][1]),
        "seconds": round(time.perf_counter() - started, 1),
    }


def matrix_deals(n_players: int) -> tuple[int, int, int]:
    """The strength matrix's columns for ``n_players``: a small deal (2 cards), a middle one
    and the largest the deck allows (52 // N)."""
    largest = 52 // n_players
    return 2, (largest + 2) // 2, largest


def play_matrix(a: Agent, b: Agent, deals: int, players=range(3, 9), **kwargs) -> list[dict]:
    """``play`` on every table of the strength matrix: rows ``players``, columns
    ``matrix_deals``. Returns the reports, row by row."""
    return [play(a, b, deals=deals, n_players=n, cards=c, **kwargs)
            for n in players for c in matrix_deals(n)]


def format_matrix(reports: list[dict]) -> str:
    """A Markdown table: one row per player count, cells "difference [95% CI] (N x C)"."""
    rows: dict[int, list[dict]] = {}
    for r in reports:
        rows.setdefault(r["players"], []).append(r)
    first = reports[0]
    lines = [f"{first['a']} vs {first['b']}: score/round of {first['a']} minus the field, "
             f"{first['deals']} duplicate deals per cell, {first['lineup']} lineup, search "
             f"{first['search']}", "",
             "| players | small deal | middle deal | largest deal |", "|---|---|---|---|"]
    for n, cells in sorted(rows.items()):
        text = [f"{r['difference']:+.2f} [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}] ({n}x{r['cards']})"
                for r in cells]
        lines.append(f"| {n} | " + " | ".join(text) + " |")
    return "\n".join(lines)


def format_report(r: dict) -> str:
    verdict = "significant" if r["significant"] else "not significant"
    lineup = f"1 {r['a']} vs {r['players'] - 1} {r['b']}" if r.get("lineup") == "solo" else "alternating"
    if r.get("mode") == "games":
        return (f"{r['a']} vs {r['b']}: {r['games']} duplicate full games x {r['plays_per_game']} "
                f"seatings ({lineup}), {r['players']} players from {r['start_cards']} cards "
                f"({r['rounds_per_game']} rounds), search {r['search']}\n"
                f"  mean total score/game  {r['a']}: {r['a_mean_total']:.1f}   "
                f"{r['b']}: {r['b_mean_total']:.1f}\n"
                f"  difference {r['difference']:+.1f}  95% CI [{r['ci95'][0]:+.1f}, {r['ci95'][1]:+.1f}]"
                f"  ({verdict})\n"
                f"  win rate per seat  {r['a']}: {r['a_win_rate']:.1%} "
                f"[{r['a_win_ci95'][0]:.1%}, {r['a_win_ci95'][1]:.1%}]   {r['b']}: "
                f"{r['b_win_rate']:.1%} [{r['b_win_ci95'][0]:.1%}, {r['b_win_ci95'][1]:.1%}]"
                f"  ({r['seconds']} s)")
    return (f"{r['a']} vs {r['b']}: {r['deals']} deals x {r['plays_per_deal']} seatings ({lineup}), "
            f"{r['players']} players, {r['cards']} cards, search {r['search']}\n"
            f"  mean score/round  {r['a']}: {r['a_mean_score']:.2f}   {r['b']}: {r['b_mean_score']:.2f}\n"
            f"  difference {r['difference']:+.2f}  95% CI [{r['ci95'][0]:+.2f}, {r['ci95'][1]:+.2f}]"
            f"  ({verdict}, {r['seconds']} s"
            + (f", {r['evaluations_per_round']:,.0f} network evaluations/round" if "evaluations_per_round" in r
               else "") + ")")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("--a", required=True,
                        help="agent A: random, greedy, expert, uniform (the search with no network), "
                             "latest, latest~N, v<N> or path.onnx")
    parser.add_argument("--b", default="random", help="agent B (default: random)")
    parser.add_argument("--a-cards", metavar="AGENT",
                        help="split agent A: A bids, this agent plays A's cards (e.g. --a expert "
                             "--a-cards latest: the model's card play behind the expert's bids)")
    parser.add_argument("--rounds", type=int, default=0,
                        help="duplicate deals, or full games with --games (default: arena.rounds)")
    parser.add_argument("--players", type=int, help="players at the table (default: arena.players)")
    parser.add_argument("--cards", type=int,
                        help="cards per seat; with --games the first deal (default: arena.cards)")
    parser.add_argument("--games", action="store_true",
                        help="play duplicate full games (the whole schedule) instead of single rounds")
    parser.add_argument("--matrix", action="store_true",
                        help="the strength matrix: players 3..8 x a small, a middle and the largest "
                             "deal, --rounds deals each; prints a Markdown table")
    parser.add_argument("--search", choices=list(SIZES), help="search size preset (default: arena.search_preset)")
    parser.add_argument("--lineup", choices=LINEUPS, default="alternate",
                        help="alternate A and B around the table, or solo: one A against N-1 B's "
                             "(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1_000_003)
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main(args: argparse.Namespace) -> int:
    try:
        overrides = [f"arena.{key}={value}" for key, value in
                     (("players", args.players), ("cards", args.cards)) if value is not None]
        if args.players is not None and args.cards is None:
            overrides.append("arena.cards=0")
        cfg = configuration.load(args.config, args.overrides + overrides)
        a, b = resolve_agent(args.a, cfg), resolve_agent(args.b, cfg)
        if args.a_cards:
            a = split_agent(a, resolve_agent(args.a_cards, cfg))
    except (configuration.ConfigError, ValueError) as exc:
        print(f"blobzero arena: {exc}", file=sys.stderr)
        return 2
    n_players, cards = cfg.arena_table()
    from blobzero.learned_beliefs import configured_belief_model
    from selfplay_client.world_values import configured_world_values
    try:
        worlds, beliefs = configured_world_values(cfg), configured_belief_model(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"blobzero arena: {exc}", file=sys.stderr)
        return 2
    common = dict(search=arena_search(cfg, args.search), seed=args.seed,
                  games_in_flight=cfg.arena.games_in_flight, lineup=args.lineup, worlds=worlds,
                  beliefs=beliefs)
    try:
        if args.matrix:
            reports = play_matrix(a, b, deals=args.rounds or cfg.arena.rounds, **common)
            print(json.dumps(reports) if args.json else format_matrix(reports))
            return 0
        if args.games:
            report = play_games(a, b, games=args.rounds or cfg.arena.rounds, n_players=n_players,
                                start_cards=cards, **common)
        else:
            report = play(a, b, deals=args.rounds or cfg.arena.rounds, n_players=n_players,
                          cards=cards, **common)
    except (ValueError, FileNotFoundError) as exc:    # e.g. a seat without its world-value model
        print(f"blobzero arena: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report) if args.json else format_report(report))
    return 0
