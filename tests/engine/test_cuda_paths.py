"""The training loop's CUDA paths on a real NVIDIA GPU: bf16 autocast under fp32 weights, the
data copied to the device once from pinned memory without blocking, CUDA agreeing with the CPU
in full precision, and data-parallel ranks under torch.distributed.run on GPUs (nccl): one rank
alone, and two when the machine has two GPUs.

Skipped, with the reason, where torch sees no CUDA device (this suite's usual machine):
`bench/gpu_check.sh` runs them on a GPU machine and stores what they gave.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from sklearn.datasets import make_classification
from torch import nn
from torch.profiler import ProfilerActivity, profile

from engine.spec import Spec
from engine.training.devices import to_device
from engine.training.distributed_rank import RankOutputs, launch_command, write_inputs
from engine.training.trainer import Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="no CUDA device here; bench/gpu_check.sh runs these on a GPU machine",
    ),
]
CUDA = torch.device("cuda")
ROOT = Path(__file__).resolve().parents[2]


def _data() -> tuple[torch.Tensor, ...]:
    x, y = make_classification(
        n_samples=3000, n_features=20, n_informative=10, n_classes=3, random_state=0
    )
    x = torch.from_numpy(x.astype(np.float32))
    y = torch.from_numpy(y.astype(np.int64))
    return x[:2400], y[:2400], x[2400:], y[2400:]


def _spec(epochs: int, precision: str, device: str = "cuda") -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "seed": 0,
            "training": {
                "epochs": epochs,
                "batch_size": 64,
                "learning_rate": 1e-3,
                "early_stopping": None,
                "precision": precision,
                "device": device,
            },
        }
    )


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(20, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 3)
    )


def test_auto_precision_trains_in_bf16_and_keeps_fp32_weights() -> None:
    model = _model()
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda _m, _i, output: seen.append(output.dtype))
    trainer = Trainer(_spec(8, "auto"), model, CUDA)

    fit = trainer.fit(*_data())

    assert trainer.autocast_dtype is torch.bfloat16
    assert torch.bfloat16 in seen, "the forward pass did not run under bf16 autocast"
    assert all(p.dtype is torch.float32 and p.is_cuda for p in model.parameters())
    assert fit.metrics["val_accuracy"] > 0.8
    assert np.isfinite(fit.metrics["val_loss"])


def test_the_data_goes_to_the_device_once_from_pinned_memory() -> None:
    epochs = 3
    x_train, y_train, x_val, y_val = _data()
    trainer = Trainer(_spec(epochs, "auto"), _model(), CUDA)

    with profile(activities=[ProfilerActivity.CUDA]) as profiler:
        trainer.fit(x_train, y_train, x_val, y_val)
        torch.cuda.synchronize()

    copies = [e for e in profiler.events() if "Memcpy HtoD" in e.name]
    pageable = [e.name for e in copies if "Pageable" in e.name]
    assert copies, "the profiler saw no host-to-device copy at all"
    assert not pageable, f"copies from pageable memory block the host: {pageable}"
    # Four tensors once, and each epoch's shuffled order: nothing per batch.
    assert len(copies) <= 4 + epochs + 2, [e.name for e in copies]


def test_a_non_blocking_copy_is_whole_before_the_device_reads_it() -> None:
    host = torch.arange(8_000_000, dtype=torch.float32)

    on_device = to_device(host, CUDA)
    total = on_device.sum()  # queued behind the copy on the same stream

    assert on_device.is_cuda
    assert total.item() == pytest.approx(float(host.double().sum()), rel=1e-6)
    assert torch.equal(on_device.cpu(), host)


def test_cuda_and_cpu_agree_in_full_precision() -> None:
    data = _data()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False

    on_cpu = Trainer(_spec(3, "fp32", "cpu"), _model(), torch.device("cpu")).fit(*data)
    on_cuda = Trainer(_spec(3, "fp32"), _model(), CUDA).fit(*data)

    for first, second in zip(on_cpu.history, on_cuda.history, strict=True):
        assert second["train_loss"] == pytest.approx(first["train_loss"], rel=1e-3)
        assert second["val_loss"] == pytest.approx(first["val_loss"], rel=1e-3)


@pytest.mark.parametrize(
    "gpus",
    [
        1,
        pytest.param(
            2,
            marks=pytest.mark.skipif(
                torch.cuda.device_count() < 2, reason="nccl between ranks needs two GPUs"
            ),
        ),
    ],
)
def test_gpu_ranks_train_under_the_launcher(gpus: int, tmp_path: Path) -> None:
    x_train, y_train, x_val, y_val = _data()
    x, y = torch.cat([x_train, x_val]).numpy(), torch.cat([y_train, y_val]).numpy()
    table = pa.table({**{f"f{i}": x[:, i] for i in range(x.shape[1])}, "label": y})
    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "training": {
                "epochs": 10,
                "batch_size": 64,
                "device": "cuda",
                "resources": {"gpus": gpus},
            },
        }
    )
    write_inputs(tmp_path, spec, table, checkpoint_interval_seconds=0)

    done = subprocess.run(
        launch_command(sys.executable, tmp_path, gpus),
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        },
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stderr[-3000:]
    outputs = RankOutputs(tmp_path)
    assert [report.epoch for report in outputs.new_epochs()] == list(range(1, 11))
    assert outputs.error() is None
    assert outputs.model().report()["evaluation"]["metrics"]["accuracy"] > 0.8
