"""A training job through the service on a GPU: routed to the gpu queue, trained on CUDA in
bf16 (precision auto), its model served. Marker `cuda`: skipped without a GPU;
bench/gpu_check.sh runs these on a GPU machine."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import Api
from tests.service.conftest import labels_of_both_classes

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="no CUDA device here; bench/gpu_check.sh runs these on a GPU machine",
    ),
    # The embedded default alone: a lent GPU machine runs no PostgreSQL or Redis.
    pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
]


def test_a_cuda_job_goes_to_the_gpu_queue_trains_in_bf16_on_the_gpu_and_predicts(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 20, "learning_rate": 0.01, "device": "cuda"})
    assert job["queue"] == "gpu"

    assert run_job(job["id"]) == "succeeded"

    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["report"]["compute"] == {
        "device": "cuda",
        "device_name": torch.cuda.get_device_name(),
        "precision": "bf16",
        "ranks": 1,
    }
    assert finished["report"]["evaluation"]["metrics"]["accuracy"] > 0.8
    assert labels_of_both_classes(api, finished["model_id"]) == ["yes", "no"]


def test_auto_trains_on_the_gpu_where_there_is_one(api: Api, dataset_id: str, submit, run_job):
    job = submit(dataset_id, training={"epochs": 2, "device": "auto", "precision": "fp32"})
    # Any worker may take it: auto asks for no GPU, it uses one where the worker has it.
    assert job["queue"] == "cpu"
    assert run_job(job["id"]) == "succeeded"
    compute = api.get(f"/v1/jobs/{job['id']}").json()["report"]["compute"]
    assert (compute["device"], compute["precision"]) == ("cuda", "fp32")
