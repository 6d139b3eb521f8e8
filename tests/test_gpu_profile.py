"""Triton tuned for the GPU: warm-up, preferred batch sizes, the optional TensorRT FP16
accelerator and GPU instances rendered from the config; the request size checked against the
model's max_batch_size at start-up; the GPU profile (config/gpu.toml) valid as shipped."""
from pathlib import Path

import pytest
from tritonclient.grpc import model_config_pb2 as mc

from plumbing.config import ConfigError, load
from plumbing.triton_config import (PRODUCTION_CONFIG, TENSORRT_PARAMETERS, local_config, parse_config,
                                    production_config, production_text, same_config)

GPU_TOML = Path(__file__).resolve().parents[1] / "config" / "gpu.toml"


def test_production_config_warms_up_and_prefers_large_merged_batches():
    config = production_config()
    inputs = {i.name: (i.data_type, list(i.dims)) for i in config.input}
    assert list(config.dynamic_batching.preferred_batch_size) == [2048, 4096]
    assert all(size <= config.max_batch_size for size in config.dynamic_batching.preferred_batch_size)
    sizes = [w.batch_size for w in config.model_warmup]
    assert max(sizes) == config.max_batch_size and all(1 <= s <= config.max_batch_size for s in sizes)
    for warmup in config.model_warmup:
        assert {name: (t.data_type, list(t.dims)) for name, t in warmup.inputs.items()} == inputs
        assert all(t.random_data for t in warmup.inputs.values())
    assert not local_config().model_warmup          # CPU instances: no cold start worth a delay


def test_production_text_renders_instances_and_the_tensorrt_accelerator():
    assert production_text() == PRODUCTION_CONFIG.read_text()
    tuned = parse_config(production_text(2, "tensorrt_fp16"))
    assert [(g.kind, g.count) for g in tuned.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 2)]
    [trt] = tuned.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and dict(trt.parameters) == TENSORRT_PARAMETERS
    assert trt.parameters["precision_mode"] == "FP16"
    # everything a client sees is unchanged
    base = production_config()
    for field in ("name", "max_batch_size", "input", "output", "version_policy", "dynamic_batching",
                  "model_warmup"):
        assert getattr(tuned, field) == getattr(base, field), field
    assert same_config(production_text(2, "tensorrt_fp16"), production_text(2, "tensorrt_fp16"))
    assert not same_config(production_text(), production_text(1, "tensorrt_fp16"))
    assert not same_config("not a config {", production_text())
    with pytest.raises(ValueError, match="accelerator"):
        production_text(1, "fp8")


@pytest.mark.parametrize("override, message", [
    ("triton.accelerator=fp8", "'triton.accelerator' must be none or tensorrt_fp16"),
    ("triton.gpu_instances=0", "'triton.gpu_instances' must be 1..16"),
    # 10,000 rounds in flight: half-batches of 5,000 positions, over max_batch_size 4,096
    ("selfplay.games_in_flight=10000", "over the model's max_batch_size 4096"),
])
def test_gpu_profile_overrides_are_validated_at_start(override, message):
    with pytest.raises(ConfigError, match=message):
        load(GPU_TOML, [override], env={})


def test_gpu_profile_requests_fit_the_model():
    cfg = load(GPU_TOML, env={})
    rows = -(-cfg.selfplay.games_in_flight // 2) * cfg.search.leaves_per_game
    assert 512 <= rows <= production_config().max_batch_size          # big requests, accepted
    assert cfg.triton.gpu_instances >= 1 and cfg.trainer.device == "cuda"


def test_trainer_writes_the_tuned_production_config_once(tmp_path):
    from trainer.service import Trainer
    cfg = load(GPU_TOML, [f"storage.games_dir={tmp_path / 'g'}", f"storage.model_repository={tmp_path / 'm'}",
                          f"storage.checkpoint_dir={tmp_path / 'c'}", "trainer.device=cpu",
                          "network.preset=tiny", "triton.accelerator=tensorrt_fp16"], env={})
    trainer = Trainer(cfg)
    trainer._prepare_repository()
    path = tmp_path / "m" / "blobnet" / "config.pbtxt"
    written = parse_config(path.read_text())
    assert written.optimization.execution_accelerators.gpu_execution_accelerator[0].name == "tensorrt"
    assert [g.count for g in written.instance_group] == [cfg.triton.gpu_instances]
    before = path.stat().st_mtime_ns
    trainer._prepare_repository()                   # same meaning: not rewritten (no reload)
    assert path.stat().st_mtime_ns == before
