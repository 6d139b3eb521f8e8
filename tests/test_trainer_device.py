"""trainer.device: the resolver's logic (tested here without a GPU), the CPU path of staging,
and "cuda" without CUDA as a clear start-up error of the real ``blobzero train``."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from plumbing.config import ConfigError, load
from trainer.device import TrainDevice, autocast_dtype, resolve_device
from trainer.examples import FIELDS


@pytest.mark.parametrize("setting, available, count, expected", [
    ("auto", True, 1, "cuda"), ("auto", False, 0, "cpu"), ("auto", True, 0, "cpu"),
    ("cpu", True, 2, "cpu"), ("cpu", False, 0, "cpu"), ("cuda", True, 1, "cuda"),
])
def test_resolver(setting, available, count, expected):
    assert resolve_device(setting, available, count) == expected


@pytest.mark.parametrize("available, count", [(False, 0), (True, 0)])
def test_cuda_without_cuda_is_a_config_error_naming_the_key(available, count):
    with pytest.raises(ConfigError, match="'trainer.device' is \"cuda\" but torch sees no CUDA"):
        resolve_device("cuda", available, count)
    with pytest.raises(ConfigError, match="'trainer.device' must be auto, cpu or cuda"):
        resolve_device("gpu", available, count)


def test_config_validates_the_device_key():
    assert load(None, [], env={}).trainer.device == "auto"
    with pytest.raises(ConfigError, match="'trainer.device' must be auto, cpu or cuda"):
        load(None, ["trainer.device=tpu"], env={})


def test_cpu_staging_alternates_two_buffers_shared_with_the_tensors():
    device = TrainDevice(torch, "cpu" if not torch.cuda.is_available() else "auto")
    first = device.buffers(16)
    first.states[:] = 1.0
    tensors = device.to_device(first)
    assert set(tensors) == set(FIELDS)
    if not device.cuda:
        assert tensors["states"].data_ptr() == first.states.ctypes.data     # no copy on the CPU
        assert float(tensors["states"].sum()) == 16 * 256
    second = device.buffers(16)
    assert second is not first and second.states.ctypes.data != first.states.ctypes.data
    assert device.buffers(16) is first                   # two sets, alternating
    assert len(device.buffers(8)) == 8                   # a new batch size: new buffers
    # a batch that is not a staging buffer is still accepted (a copy of its arrays)
    other = type(first).empty(4)
    assert device.to_device(other)["masks"].shape == (4, 52)
    np.testing.assert_array_equal(device.to_device(other)["tricks"].numpy(), other.tricks)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine satisfies trainer.device=cuda")
def test_blobzero_train_refuses_cuda_without_cuda(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "blobzero.cli", "train", "--set", "trainer.device=cuda",
         "--set", f"storage.games_dir={tmp_path / 'g'}", "--set", f"storage.model_repository={tmp_path / 'm'}",
         "--set", f"storage.checkpoint_dir={tmp_path / 'c'}", "--set", "metrics.trainer_port=0",
         "--steps", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "config key 'trainer.device' is \"cuda\" but torch sees no CUDA device" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "m").exists()                 # refused before touching storage


@pytest.mark.parametrize("cuda,capability,expected", [
    (True, (9, 0), "bfloat16"),      # H100 / H200
    (True, (8, 0), "bfloat16"),      # A100
    (True, (8, 9), "bfloat16"),      # L4, RTX 40xx
    (True, (7, 5), None),            # T4, RTX 20xx: no native bf16 -> float32
    (True, (7, 0), None),            # V100
    (True, (6, 0), None),            # P100
    (False, None, None),
])
def test_bf16_only_where_the_gpu_computes_it(cuda, capability, expected):
    assert autocast_dtype(cuda, capability) == expected


def test_the_cpu_has_no_autocast():
    device = TrainDevice(torch, "cpu")
    assert device.amp is None and device.describe() == "cpu (float32)"
