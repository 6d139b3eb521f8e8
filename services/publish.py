"""``blobzero publish PATH``: publish an ONNX file as the next model version by hand
(e.g. a rollback to an archived ``checkpoints/versions/v<N>.onnx``), exactly as the trainer
does: staged, fsynced, validated, renamed, pruned."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plumbing import config as configuration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    configuration.add_config_arguments(parser)
    parser.add_argument("onnx", type=Path, help="the BlobNet ONNX file to publish")
    parser.add_argument("--keep", type=int, default=0,
                        help="versions to keep after publishing (default: trainer.keep_versions)")


def main(args: argparse.Namespace) -> int:
    from plumbing.model_repository import ModelRepositoryError, publish_version
    cfg = configuration.from_args_or_exit(args, "publish")
    if not args.onnx.is_file():
        print(f"blobzero publish: {args.onnx} is not a file", file=sys.stderr)
        return 2
    try:
        version = publish_version(cfg.storage.model_repository, args.onnx,
                                  keep_last=args.keep or cfg.trainer.keep_versions,
                                  model_name=cfg.triton.model_name)
    except (ModelRepositoryError, ValueError) as exc:
        print(f"blobzero publish: {exc}", file=sys.stderr)
        return 1
    print(f"published {args.onnx} as {cfg.triton.model_name} version {version} in "
          f"{cfg.storage.model_repository}")
    return 0
