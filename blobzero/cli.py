"""The ``blobzero`` command: one entry point, one subcommand per tool.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``main(args) -> int``; modules are imported only when their command runs, so a
missing optional part (e.g. Triton) never breaks the others.
"""
from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand name -> (module path, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("blobzero.demo", "play rounds between built-in players and print a score table"),
    "bench": ("blobzero.bench", "run a benchmark and print one JSON object"),
    "serve": ("services.triton_local", "start the local tritonserver on the model repository"),
    "selfplay": ("selfplay_client.service", "self-play client: search against Triton, write game shards"),
    "train": ("trainer.service", "trainer: learn from game shards, publish model versions"),
    "game": ("blobzero.game", "play complete games between any agents, one per seat; the score table"),
    "arena": ("blobzero.arena", "play two agents on duplicate deals and compare their scores"),
    "publish": ("services.publish", "publish an ONNX file as the next model version (e.g. a rollback)"),
    "strength": ("blobzero.strength", "measure published versions against built-in players; learning curve"),
    "loop": ("blobzero.loop", "the whole training loop as local processes (what `make run` runs)"),
    "agent": ("blobzero.agent.server", "the trained agent as a gRPC service and a web page to play it"),
    "review": ("blobzero.agent.review", "every decision of one seat of a game file, searched: the points lost"),
    "ladder": ("blobzero.ladder", "ratings (Bradley-Terry, 95% intervals) of built-in players, levels and versions"),
    "beliefs": ("blobzero.beliefs", "learned beliefs, offline: data from records, training, held-out quality"),
    "worlds": ("blobzero.worlds", "the world-value model: data from records, training, held-out error, arena"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; only ``command``'s module is imported (all of them when None)."""
    parser = argparse.ArgumentParser(prog="blobzero", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_path, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(_module=module_path)
        if command is not None and name != command:
            continue
        try:
            module = importlib.import_module(module_path)
        except ImportError as exc:  # keep the other commands usable
            p.set_defaults(_import_error=f"'{name}' is unavailable: {exc}")
            continue
        module.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # Import only the module of the command being run: `blobzero demo` must not pay for torch.
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    if getattr(args, "_import_error", None):
        print(f"blobzero: {args._import_error}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.main(args) or 0)
    except KeyboardInterrupt:
        print("blobzero: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
