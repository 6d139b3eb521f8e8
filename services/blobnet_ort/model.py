"""Triton python-based backend ``blobnet_ort``: runs a version's model.onnx in ONNX Runtime.

Local flavour only (the pytriton wheel's tritonserver has no native onnxruntime backend).
It is a *backend*, not a model file: services/triton_local.py links this file as
``<backends>/blobnet_ort/model.py`` and the generated config says ``backend: "blobnet_ort"``.
So version directories hold only ``model.onnx`` — exactly like production — and nothing the
stub writes (``__pycache__``) lands in the watched model repository.

Per execute() call, all requests the dynamic batcher handed over are concatenated into one
ORT run (B = sum of their positions), then split back: batching pays off only this way.
Runs inside Triton's python stub, never imported by the project itself.
"""
import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

INPUT_NAMES = ("state", "mask")
OUTPUT_NAMES = ("policy", "value")


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
        pb_utils.Logger.log_info(
            f"blobnet_ort: {args['model_name']} v{args['model_version']} loaded {path} "
            f"(intra_op_threads={options.intra_op_num_threads})")

    def _inputs(self, request):
        """(state (n,256), mask (n,52)) of one request, or a TritonError explaining the problem."""
        arrays = []
        for name in INPUT_NAMES:
            tensor = pb_utils.get_input_tensor_by_name(request, name)
            if tensor is None:
                return pb_utils.TritonError(f"missing input '{name}'")
            arrays.append(tensor.as_numpy())
        state, mask = arrays
        if state.shape[0] != mask.shape[0]:
            return pb_utils.TritonError(
                f"inputs disagree on the batch size: state has {state.shape[0]} rows, "
                f"mask has {mask.shape[0]}")
        return state, mask

    def execute(self, requests):
        responses = [None] * len(requests)
        good, states, masks = [], [], []
        for i, request in enumerate(requests):
            parsed = self._inputs(request)
            if isinstance(parsed, pb_utils.TritonError):  # fail only this request, serve the rest
                responses[i] = pb_utils.InferenceResponse(output_tensors=[], error=parsed)
                continue
            good.append(i)
            states.append(parsed[0])
            masks.append(parsed[1])
        if good:
            state = states[0] if len(states) == 1 else np.concatenate(states)
            mask = masks[0] if len(masks) == 1 else np.concatenate(masks)
            policy, value = self.session.run(OUTPUT_NAMES, {"state": state, "mask": mask})
            start = 0
            for i, rows in zip(good, (s.shape[0] for s in states)):
                stop = start + rows
                responses[i] = pb_utils.InferenceResponse(output_tensors=[
                    pb_utils.Tensor("policy", policy[start:stop]),
                    pb_utils.Tensor("value", value[start:stop]),
                ])
                start = stop
        return responses

    def finalize(self):
        self.session = None
