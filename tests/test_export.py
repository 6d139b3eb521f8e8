"""ONNX export: parity with torch, the wire contract, metadata, crash-safe writes, validation."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from plumbing.netspec import MASK, NUM_ACTIONS, POLICY, STATE, STATE_DIM, VALUE, VALUE_DIM
from selfplay_client.evaluator import OrtEvaluator
from plumbing.model_repository import InvalidModelError, validate_onnx
from triton_helpers import random_batch
from trainer.blobnet import ServingNet, build
from trainer.export import export_onnx, read_metadata


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """preset -> (net, path) for every preset, exported once for the module."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name in ("tiny", "small", "full"):
        net = build(name, seed=11)
        out[name] = (net, export_onnx(net, root / f"{name}.onnx"))
    return out


@pytest.mark.parametrize("name", ["tiny", "small", "full"])
@pytest.mark.parametrize("batch", [1, 37, 256])
def test_onnx_runtime_matches_torch(exported, name, batch):
    net, path = exported[name]
    states, masks = random_batch(batch, seed=batch)
    with torch.no_grad():
        policy_t, value_t = ServingNet(net)(torch.from_numpy(states), torch.from_numpy(masks))
    policy_o, value_o = OrtEvaluator(path, intra_op_threads=1).evaluate(states, masks)
    assert policy_o.shape == (batch, NUM_ACTIONS) and value_o.shape == (batch, VALUE_DIM)
    assert np.abs(policy_o - policy_t.numpy()).max() <= 1e-4
    assert np.abs(value_o - value_t.numpy()).max() <= 1e-4
    assert np.all(policy_o[masks == 0] == 0)
    np.testing.assert_allclose(policy_o.sum(axis=1), 1.0, atol=1e-5)


def test_graph_has_contract_names_and_dynamic_batch(exported):
    model = onnx.load(str(exported["tiny"][1]))

    def dims(values):
        return {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}

    assert dims(model.graph.input) == {STATE: ["batch", STATE_DIM], MASK: ["batch", NUM_ACTIONS]}
    assert dims(model.graph.output) == {POLICY: ["batch", NUM_ACTIONS], VALUE: ["batch", VALUE_DIM]}
    assert all(t.tensor_type.elem_type == onnx.TensorProto.FLOAT
               for t in [v.type for v in [*model.graph.input, *model.graph.output]])


def test_metadata_records_the_config(exported):
    meta = read_metadata(exported["full"][1])
    assert meta["width"] == 256 and meta["depth"] == 6
    assert meta["parameters"] == exported["full"][0].config.parameters


def test_export_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "model.onnx"
    export_onnx(build("tiny", seed=1), path)
    first = path.read_bytes()
    export_onnx(build("tiny", seed=2), path)
    assert path.read_bytes() != first
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_validate_accepts_an_export_and_rejects_broken_files(exported, tmp_path):
    good = exported["tiny"][1]
    validate_onnx(good)
    data = good.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 10):
        truncated = tmp_path / f"cut{cut}.onnx"
        truncated.write_bytes(data[:cut])
        with pytest.raises(InvalidModelError):
            validate_onnx(truncated)
    with pytest.raises(InvalidModelError, match="no such file"):
        validate_onnx(tmp_path / "missing.onnx")


def test_validate_rejects_a_model_with_other_tensors(tmp_path):
    model = onnx.load(str(export_onnx(build("tiny", seed=0), tmp_path / "m.onnx")))
    model.graph.output[1].name = "value_renamed"
    for node in model.graph.node:
        node.output[:] = ["value_renamed" if o == VALUE else o for o in node.output]
    renamed = tmp_path / "renamed.onnx"
    onnx.save(model, str(renamed))
    with pytest.raises(InvalidModelError, match="outputs are"):
        validate_onnx(renamed)
