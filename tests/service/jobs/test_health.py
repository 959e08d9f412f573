"""Training health in a job's record: learning rate and gradient norms per epoch, warnings."""

from __future__ import annotations

import math

from tests.conftest import Api

SIGMOID_TOWER = {"layers": [{"type": "dense", "units": 32, "activation": "sigmoid"}] * 10}


def history(api: Api, job_id: str) -> list[dict]:
    response = api.get(f"/v1/jobs/{job_id}/metrics")
    assert response.status_code == 200, response.text
    return response.json()["epochs"]


def test_queued_job_has_no_warnings(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id, training={"epochs": 3})
    assert job["warnings"] == []
    assert api.get(f"/v1/jobs/{job['id']}").json()["warnings"] == []


def test_history_has_learning_rate_and_gradient_norms_every_epoch(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    # The rate halves after every epoch.
    training = {"epochs": 3, "schedule": {"type": "step", "step_size": 1, "gamma": 0.5}}
    job = submit(dataset_id, training=training)
    assert run_job(job["id"]) == "succeeded"
    epochs = history(api, job["id"])
    assert [e["epoch"] for e in epochs] == [1, 2, 3]
    rates = [e["values"]["learning_rate"] for e in epochs]
    assert all(math.isclose(a, 2 * b) for a, b in zip(rates, rates[1:], strict=False)), rates
    assert rates[0] <= 1e-3
    for entry in epochs:
        norms = {k: v for k, v in entry["values"].items() if k.startswith("grad_norm/")}
        assert norms, entry
        assert all(math.isfinite(v) and v >= 0 for v in norms.values())
        assert any(v > 0 for v in norms.values())
        # The default MLP uses ReLU: the share of units that never fire is reported.
        assert 0.0 <= entry["values"]["dead_relu_fraction"] <= 1.0
    # Every epoch reports the same layers.
    assert len({tuple(sorted(e["values"])) for e in epochs}) == 1
    # A small healthy MLP raises nothing.
    assert api.get(f"/v1/jobs/{job['id']}").json()["warnings"] == []


def test_deep_sigmoid_network_warns_of_vanishing_gradients(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, model=SIGMOID_TOWER, training={"epochs": 3})
    assert run_job(job["id"]) == "succeeded"  # a warning, not a failure
    body = api.get(f"/v1/jobs/{job['id']}").json()
    vanishing = [w for w in body["warnings"] if w["code"] == "vanishing_gradient"]
    assert len(vanishing) == 1, body["warnings"]
    # The condition holds from the first epoch (it is raised once it has lasted two).
    assert vanishing[0]["epoch"] == 1
    assert "first layer" in vanishing[0]["message"]
    metrics = api.get(f"/v1/jobs/{job['id']}/metrics").json()
    assert metrics["warnings"] == body["warnings"]
    # The history shows why: the first layer's gradient is orders of magnitude below the last.
    first = metrics["epochs"][0]["values"]
    assert first["grad_norm/layers.0.0"] < 1e-5 * first["grad_norm/head.0"]
