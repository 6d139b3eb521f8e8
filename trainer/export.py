"""Export BlobNet to ONNX for serving (Triton, both repository flavours) and in-process ORT.

The graph is ``ServingNet``: inputs ``state (B,256) float32``, ``mask (B,52) float32``;
outputs ``policy (B,52)`` (masked softmax baked in) and ``value (B,8)``; B is a dynamic axis.
The file is written crash-safely (temp name, fsync, rename) and carries the network's
config as ONNX metadata (key ``blobnet``, JSON).

    python -m trainer.export --preset tiny --seed 0 --out /tmp/blobnet.onnx
"""
from __future__ import annotations

import argparse
import io
import json
import warnings
from pathlib import Path

import onnx
import torch

from plumbing.fsio import atomic_write_bytes
from plumbing.netspec import MASK, POLICY, STATE, VALUE
from trainer.blobnet import PRESETS, BlobNet, ServingNet, build

#: ONNX opset: 17 has a native LayerNormalization op (one fused kernel in ORT and TensorRT).
OPSET = 17
METADATA_KEY = "blobnet"


def onnx_bytes(net: BlobNet, opset: int = OPSET) -> bytes:
    """Serialise ``ServingNet(net)`` to ONNX bytes with a dynamic batch axis."""
    serving = ServingNet(net).eval()
    cfg = net.config
    example = (torch.zeros(2, cfg.state_dim), torch.ones(2, cfg.num_actions))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # torch 2.13 flags the TorchScript exporter as legacy; it is the one that needs no onnxscript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            serving, example, buffer,
            input_names=[STATE, MASK], output_names=[POLICY, VALUE],
            dynamic_axes={name: {0: "batch"} for name in (STATE, MASK, POLICY, VALUE)},
            opset_version=opset, do_constant_folding=True,
            dynamo=False,  # the TorchScript exporter; dynamo needs onnxscript, which we do not ship
        )
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(net.describe(), sort_keys=True)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_onnx(net: BlobNet, path: str | Path, opset: int = OPSET) -> Path:
    """Write ``net`` as an ONNX serving graph to ``path`` atomically; returns the path."""
    return atomic_write_bytes(path, onnx_bytes(net, opset))


def export_fresh(preset_name: str, path: str | Path, seed: int = 0) -> Path:
    """Export a randomly initialised BlobNet of a named preset (e.g. version 1 of a new run)."""
    return export_onnx(build(preset_name, seed=seed), path)


def read_metadata(path: str | Path) -> dict:
    """The BlobNet config stored in an exported file ({} if absent). Loads the graph, not the weights."""
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            return json.loads(entry.value)
    return {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="export a freshly initialised BlobNet to ONNX")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(export_fresh(args.preset, args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
