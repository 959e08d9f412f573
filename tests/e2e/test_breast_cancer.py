"""The whole spine through real processes: upload breast_cancer, train, predict held-out rows."""

from __future__ import annotations

import signal

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from client import Client
from tests.e2e.fleet import (
    api_and_worker,
    free_port,
    postgres_redis_env,
    run_timed_job,
    service_env,
    stop,
    trainyard,
    wait_until_ready,
)
from tests.sample_data import breast_cancer_columns, csv_bytes

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "k" * 24


def held_out_split() -> tuple[dict[str, list], list[dict], list[int]]:
    columns = breast_cancer_columns()
    rows = np.arange(len(columns["label"]))
    train, test = train_test_split(rows, test_size=0.2, random_state=0, stratify=columns["label"])
    train_columns = {name: [values[i] for i in train] for name, values in columns.items()}
    features = [name for name in columns if name != "label"]
    instances = [{name: columns[name][i] for name in features} for i in test]
    return train_columns, instances, [columns["label"][i] for i in test]


def train_and_score(base_url: str) -> dict[str, float]:
    train_columns, instances, truth = held_out_split()
    with Client(base_url, KEY) as client:
        dataset = client.upload_dataset(csv_bytes(train_columns), "breast_cancer.csv")
        assert dataset["rows"] == len(train_columns["label"])

        spec = {"task": "classification", "target": "label"}
        current, running_after, succeeded_after = run_timed_job(client, dataset["id"], spec)
        assert current["status"] == "succeeded", current["error"]

        history = client.job_metrics(current["id"])["epochs"]
        assert [e["epoch"] for e in history] == list(range(1, len(history) + 1))
        predictions = client.predict(current["model_id"], instances)
    accuracy = float(np.mean([p["label"] == y for p, y in zip(predictions, truth, strict=True)]))
    assert accuracy >= 0.93, accuracy
    timings = {"to_running_s": running_after, "to_succeeded_s": succeeded_after}
    print(f"\nbreast_cancer: accuracy={accuracy:.3f} timings={timings}")
    return timings


@pytest.mark.postgres
@pytest.mark.redis
def test_breast_cancer_on_postgres_and_redis_with_separate_api_and_worker(tmp_path) -> None:
    with postgres_redis_env(tmp_path / "data", KEY) as env, api_and_worker(env, tmp_path) as url:
        train_and_score(url)


def test_breast_cancer_on_the_embedded_default_through_trainyard_run(tmp_path) -> None:
    port = free_port()
    env = service_env(tmp_path / "data", port, KEY)
    run = trainyard("run", env=env, log=tmp_path / "run.log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        train_and_score(f"http://127.0.0.1:{port}")
    finally:
        # Ctrl-C stops the API and the worker, and `trainyard run` exits cleanly.
        exit_code = stop(run, signal.SIGINT, timeout=60)
    assert exit_code == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert (tmp_path / "data" / "trainyard.sqlite").exists()
