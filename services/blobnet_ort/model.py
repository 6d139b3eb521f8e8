"""Triton python-based backend ``blobnet_ort``: runs a version's model.onnx in ONNX Runtime.

Local flavour only (the pytriton wheel's tritonserver has no native onnxruntime backend).
It is a *backend*, not a model file: services/triton_local.py links this file as
``<backends>/blobnet_ort/model.py`` and the generated config says ``backend: "blobnet_ort"``.
So version directories hold only ``model.onnx`` — exactly like production — and nothing the
stub writes (``__pycache__``) lands in the watched model repository.

Per execute() call, all requests the dynamic batcher handed over are concatenated into one
ORT run (B = sum of their positions), then split back: batching pays off only this way. The
tensors are the model config's (BlobNet's state/mask -> policy/value, the world-value model's
world -> world_value; plumbing/netspec.py), so one backend serves every model of the repository.
Runs inside Triton's python stub, never imported by the project itself.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        filename = config.get("default_model_filename") or "model.onnx"
        path = os.path.join(args["model_repository"], args["model_version"], filename)
        options = ort.SessionOptions()
        # One intra-op thread per instance: parallelism comes from instances, and a spinning
        # thread pool per instance would fight the gRPC threads and the clients for cores.
        options.intra_op_num_threads = int(_parameter(config, "intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        # A truncated or corrupt file raises here, so Triton marks this version as failed to load.
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = tuple(t["name"] for t in config["input"])
        self.outputs = tuple(t["name"] for t in config["output"])
        pb_utils.Logger.log_info(
            f"blobnet_ort: {args['model_name']} v{args['model_version']} loaded {path} "
            f"(intra_op_threads={options.intra_op_num_threads})")

    def _inputs(self, request):
        """The request's input arrays in config order, or a TritonError explaining the problem."""
        arrays = []
        for name in self.inputs:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                return pb_utils.TritonError(f"missing input '{name}'")
            arrays.append(tensor.as_numpy())
        rows = {name: a.shape[0] for name, a in zip(self.inputs, arrays)}
        if len(set(rows.values())) > 1:
            return pb_utils.TritonError(f"inputs disagree on the batch size: {rows}")
        return arrays

    def execute(self, requests):
        responses = [None] * len(requests)
        good, parsed_all = [], []
        for i, request in enumerate(requests):
            parsed = self._inputs(request)
            if isinstance(parsed, pb_utils.TritonError):  # fail only this request, serve the rest
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=parsed)
                continue
            good.append(i)
            parsed_all.append(parsed)
        if good:
            feeds = {name: (parsed_all[0][k] if len(parsed_all) == 1 else
                            np.concatenate([p[k] for p in parsed_all]))
                     for k, name in enumerate(self.inputs)}
            results = self.session.run(self.outputs, feeds)
            start = 0
            for i, parsed in zip(good, parsed_all):
                stop = start + parsed[0].shape[0]
                responses[i] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor(name, result[start:stop]) for name, result in zip(self.outputs, results)])
                start = stop
        return responses

    def finalize(self):
        self.session = None
