"""A real service on an S3 store: `trainyard run` (a real HTTP server and a real Celery
worker) pointed at a bucket on moto's S3 server by the endpoint setting. The upload, the
checkpoints, the model's files and a batch result are objects in the bucket, the model is
served from them, nothing lands on a local path, `/readyz` checks the bucket, and the secret
key appears in no log, response or repr, on a wrong bucket's 503 either."""

from __future__ import annotations

import io
import time
import uuid

import httpx
import pyarrow.parquet as pq
import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.s3_server import S3Server, s3_server
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "s" * 24
PREFIX = "store"


def train_watching_checkpoints(client: Client, s3: S3Server, dataset_id: str) -> tuple[dict, set]:
    """Train a job to its end, listing the bucket meanwhile: (the job, checkpoint keys seen)."""
    spec = {
        "task": "classification",
        "target": "label",
        "training": {"epochs": 150, "early_stopping": None},
    }
    job = client.create_job(dataset_id, spec)
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while (job := client.get_job(job["id"]))["status"] in ("queued", "running"):
        seen.update(s3.list_keys(f"{PREFIX}/jobs/{job['id']}/"))
        assert time.monotonic() < deadline, f"job still {job['status']}"
    return job, seen


def test_a_service_on_s3_trains_predicts_and_batch_predicts_from_the_bucket(tmp_path) -> None:
    secret = f"s3-secret-{uuid.uuid4().hex}"
    with s3_server(secret_access_key=secret) as s3:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = service_env(
            tmp_path / "data", port, KEY, **s3.settings(PREFIX), checkpoint_interval_seconds="0"
        )
        log = tmp_path / "run.log"
        bodies: list[str] = []
        run = trainyard("run", env=env, log=log)
        try:
            wait_until_ready(url, [run])
            ready = httpx.get(f"{url}/readyz")
            bodies.append(ready.text)
            assert ready.json()["checks"]["store"] == "ok"

            with Client(url, KEY) as client:
                train = client.upload_dataset(csv_bytes(mixed_classification(n=240)), "train.csv")
                stored = s3.list_keys(f"{PREFIX}/datasets/{train['id']}/")
                assert f"{PREFIX}/datasets/{train['id']}/data.parquet" in stored, stored

                job, checkpoints = train_watching_checkpoints(client, s3, train["id"])
                assert job["status"] == "succeeded", job["error"]
                assert checkpoints == {f"{PREFIX}/jobs/{job['id']}/checkpoint.pt"}
                # A finished job's checkpoint is deleted from the bucket (just after the job
                # is recorded as succeeded).
                deadline = time.monotonic() + 10
                while s3.list_keys(f"{PREFIX}/jobs/{job['id']}/"):
                    assert time.monotonic() < deadline, "the checkpoint outlived its job"
                    time.sleep(0.05)
                model_id = job["model_id"]
                model_files = s3.list_keys(f"{PREFIX}/models/{model_id}/")
                assert {
                    f"{PREFIX}/models/{model_id}/{name}"
                    for name in ("spec.json", "weights.safetensors", "preprocess.json")
                } <= set(model_files)

                rows = mixed_classification(n=50, seed=3)
                del rows["label"]
                instances = [
                    dict(zip(rows, values, strict=True))
                    for values in zip(*rows.values(), strict=True)
                ]
                predictions = client.predict(model_id, instances)
                assert len(predictions) == 50 and all("label" in p for p in predictions)

                ids = [f"row-{i}" for i in range(50)]
                scored = client.upload_dataset(csv_bytes({"id": ids, **rows}), "score.csv")
                batch = client.create_batch_prediction(model_id, scored["id"], format="parquet")
                batch = client.wait_for_batch_prediction(batch["id"], timeout=120)
                assert batch["status"] == "succeeded", batch["error"]
                assert s3.list_keys(f"{PREFIX}/predictions/{batch['id']}/") == [
                    f"{PREFIX}/predictions/{batch['id']}/predictions.parquet"
                ]
                result = pq.read_table(io.BytesIO(client.batch_prediction_result(batch["id"])))
                assert result.column("id").to_pylist() == ids
                assert result.column("label").to_pylist() == [p["label"] for p in predictions]

                bodies += [str(job), str(batch), str(predictions), str(client.list_jobs())]
        finally:
            stop(run)

        # Nothing of the store went to a local path.
        assert not (tmp_path / "data" / "store").exists()
        assert s3.unfinished_uploads() == []

        # A wrong bucket: /readyz answers 503 naming the store, and still no secret anywhere.
        port = free_port()
        wrong = {**s3.settings(PREFIX), "store_url": "s3://no-such-bucket-here/store"}
        api_log = tmp_path / "api.log"
        api = trainyard("api", env=service_env(tmp_path / "wrong", port, KEY, **wrong), log=api_log)
        try:
            unready = wait_for_an_answer(f"http://127.0.0.1:{port}/readyz", api)
            bodies.append(unready.text)
            assert unready.status_code == 503
            assert unready.json()["checks"]["store"].startswith("unreachable")
        finally:
            stop(api)

    assert "Application startup complete" in api_log.read_text()
    for text in [log.read_text(), api_log.read_text(), *bodies]:
        assert secret not in text


def wait_for_an_answer(url: str, proc, timeout: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the API exited during start-up"
        try:
            return httpx.get(url, timeout=10)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)
