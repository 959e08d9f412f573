"""The metrics module's own rules: GPU readings that never initialise CUDA, and the pruning of
a machine's metrics folder (the end-to-end checks are in tests/e2e/test_metrics.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from types import SimpleNamespace

import torch
from prometheus_client import REGISTRY

from service.core import metrics


def gpu_sample(name: str, worker: str, device: str = "cuda:0") -> float | None:
    return REGISTRY.get_sample_value(name, {"worker": worker, "device": device})


def test_gpu_readings_leave_cuda_uninitialised_on_a_worker_that_did_not_use_it() -> None:
    worker = f"host:{uuid.uuid4().hex[:8]}"
    metrics.record_gpu(worker)
    assert not torch.cuda.is_initialized()
    assert gpu_sample("trainyard_gpu_memory_allocated_bytes", worker) is None


def test_gpu_readings_of_a_worker_whose_training_initialised_cuda(monkeypatch) -> None:
    def utilization(index: int) -> int:
        raise ModuleNotFoundError("pynvml")  # no nvidia-ml-py: no utilisation, the rest stays

    cuda = SimpleNamespace(
        is_initialized=lambda: True,
        device_count=lambda: 1,
        memory_allocated=lambda index: 1000,
        memory_reserved=lambda index: 4096,
        max_memory_allocated=lambda index: 2000,
        utilization=utilization,
    )
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    worker = f"host:{uuid.uuid4().hex[:8]}"
    metrics.record_gpu(worker)
    assert gpu_sample("trainyard_gpu_memory_allocated_bytes", worker) == 1000
    assert gpu_sample("trainyard_gpu_memory_reserved_bytes", worker) == 4096
    assert gpu_sample("trainyard_gpu_memory_peak_allocated_bytes", worker) == 2000
    assert gpu_sample("trainyard_gpu_utilization_ratio", worker) is None


def test_preparing_the_folder_prunes_the_files_of_processes_that_are_gone(tmp_path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead_pid = int(gone.stdout)
    folder = tmp_path / "metrics"
    folder.mkdir()
    for name in (f"counter_{dead_pid}.db", f"gauge_livemostrecent_{dead_pid}.db"):
        (folder / name).write_bytes(b"")
    mine = folder / f"counter_{os.getpid()}.db"
    mine.write_bytes(b"")
    metrics.prepare_metrics_dir(folder)
    assert sorted(p.name for p in folder.iterdir()) == [mine.name]
