"""``blobzero review GAME.json``: every decision of one seat of a game file, searched by the agent.

    blobzero review game.json                       # the first human seat, search agent.search_preset
    blobzero review game.json --seat 2 --search heavy --json
    blobzero review game.json --onnx runs/<date>/checkpoints/versions/v000032.onnx

The same review as the agent's ``Review`` (``AgentApi.review``: each decision searched exactly as
``Advise`` searches it), run in this process on the network ``blobzero agent`` would use
(``--onnx`` / ``agent.onnx_file``, else the versions of ``storage.model_repository``, uniform
priors while there is none). The table shows per decision the action taken, the best action,
their expected round scores and the points lost; ``*`` marks the three costliest. ``--json``
prints the ReviewResponse (what ``POST /api/Review`` answers).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from plumbing import config as configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("game", help="a game file (docs/gamefile.md)")
    parser.add_argument("--seat", type=int, help="whose decisions (default: the first human seat, else 0)")
    parser.add_argument("--search", default="", help="easy | normal | light | medium | heavy (default: agent.search_preset)")
    parser.add_argument("--rounds", default="", help="only these rounds, 1-based, comma-separated")
    parser.add_argument("--onnx", help="the network (default: agent.onnx_file, else the model repository)")
    parser.add_argument("--model", default="", help="latest or a version number (default: agent.model)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print the review as JSON (a ReviewResponse)")


def action_text(a) -> str:
    return f"bid {a.bid}" if a.WhichOneof("what") == "bid" else a.card


def format_review(review, record) -> str:
    seat = review.seat
    kind = record.seats[seat]["kind"]
    lines = [f"review of seat {seat} ({kind}): {len(review.decisions)} decisions, search {review.search}, "
             f"model {review.model_version}",
             f"{'round':>5} {'cards':>5} {'ply':>3}  {'taken':<7} {'score':>6}  {'best':<7} {'score':>6}  "
             f"{'lost':>5}"]
    for d in review.decisions:
        best = max(d.actions, key=lambda a: a.value)
        mark = " *" if d.costly else ("  forced" if d.forced else "")
        lines.append(f"{d.round_index + 1:>5} {record.rounds[d.round_index].cards:>5} {d.ply:>3}  "
                     f"{action_text(d.taken):<7} {d.taken.value:>6.2f}  {action_text(best):<7} {best.value:>6.2f}  "
                     f"{d.points_lost:>5.2f}{mark}")
    lines.append(f"points lost in all: {review.total_points_lost:.2f}"
                 + (f" (costliest: {', '.join(f'round {review.decisions[i].round_index + 1} ply {review.decisions[i].ply}' for i in review.costliest)})"
                    if review.costliest else ""))
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from blobzero import agent_pb2 as pb
    from blobzero import gamefile
    from blobzero.agent.api import AgentApi, ApiError
    from blobzero.agent.engine import Engine
    from blobzero.agent.server import build_models
    from blobzero.agent.web import to_json

    overrides = list(args.overrides) + ([f"agent.onnx_file={args.onnx}"] if args.onnx else [])
    try:
        cfg = configuration.load(args.config, overrides)
        text = Path(args.game).read_text()
        record = gamefile.loads(text)
        seat = args.seat if args.seat is not None else next(
            (i for i, s in enumerate(record.seats) if s["kind"] in ("human", "other")), 0)
        rounds = [int(r) - 1 for r in args.rounds.split(",") if r.strip()]
    except (configuration.ConfigError, OSError, ValueError) as exc:
        print(f"blobzero review: {exc}", file=sys.stderr)
        return 2
    from blobzero.learned_beliefs import BeliefModel, configured_belief_model
    from selfplay_client.world_values import configured_world_values
    try:       # the learned parts the configured search names, if any
        worlds, belief_file = configured_world_values(cfg), configured_belief_model(cfg)
    except (ValueError, FileNotFoundError) as exc:
        print(f"blobzero review: {exc}", file=sys.stderr)
        return 2
    models, _ = build_models(cfg, local_triton=False)
    engine = Engine(models, slots=cfg.agent.slots, deadline_s=cfg.agent.model_deadline_s, worlds=worlds,
                    beliefs=None if belief_file is None else BeliefModel(belief_file))
    try:
        api = AgentApi(cfg, engine, keep_games=False)
        review = api.review_all(pb.ReviewRequest(game_json=text, seat=seat, search=args.search,
                                                 model_version=args.model, rounds=rounds, seed=args.seed))
    except ApiError as exc:
        print(f"blobzero review: {exc.message}", file=sys.stderr)
        return 2
    finally:
        engine.close()
        models.close()
    print(json.dumps(to_json(review)) if args.json else format_review(review, record))
    return 0
