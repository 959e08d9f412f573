"""Batch prediction end to end on the embedded default (`trainyard run`: a real HTTP server and
a real Celery worker): train a small model, submit a batch prediction over an uploaded table
with an id column, follow its progress to `succeeded`, download Parquet and CSV, and find them
equal, row for row, to what the synchronous predict endpoint answers for the same rows."""

from __future__ import annotations

import io
import time

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from client import BatchPrediction, Client
from client.models import BatchProgress
from service.batch_predictions.prediction_run import CHUNK_ROWS
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, mixed_classification, npz_bytes

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "b" * 24
# More rows than one chunk, so the run reports progress more than once.
ROWS = 2 * CHUNK_ROWS + 808
FEATURES = ("x1", "x2", "colour")


def follow(
    client: Client, batch_id: str, timeout: float = 120
) -> tuple[BatchPrediction, list[BatchProgress]]:
    """Poll a batch prediction to its end: (its final state, every progress seen on the way)."""
    deadline = time.monotonic() + timeout
    seen: list[BatchProgress] = []
    while True:
        batch = client.get_batch_prediction(batch_id)
        seen.append(batch["progress"])
        if batch["status"] not in ("queued", "running"):
            return batch, seen
        assert time.monotonic() < deadline, f"batch prediction still {batch['status']}"
        time.sleep(0.02)


def predict_like_the_batch(client: Client, model_id: str, rows: dict[str, list]) -> list[dict]:
    """The predict endpoint over the same rows, in the batch's chunks: each chunk is the same
    forward pass, so the numbers agree to the last bit (float32 sums differ between sizes)."""
    instances = [{name: rows[name][i] for name in FEATURES} for i in range(ROWS)]
    predictions: list[dict] = []
    for start in range(0, ROWS, CHUNK_ROWS):
        predictions += client.predict(model_id, instances[start : start + CHUNK_ROWS])
    return predictions


def assert_equal_to_predict(result: pa.Table, ids: list[str], expected: list[dict]) -> None:
    classes = sorted(expected[0]["probabilities"])
    assert result.column_names == ["id", "label", *[f"probability_{c}" for c in classes]]
    assert result.num_rows == ROWS
    assert result.column("id").to_pylist() == ids
    assert result.column("label").to_pylist() == [p["label"] for p in expected]
    for c in classes:
        got = result.column(f"probability_{c}").to_pylist()
        assert got == pytest.approx([p["probabilities"][c] for p in expected], abs=1e-9)


def test_a_batch_prediction_runs_on_a_worker_and_equals_the_predict_endpoint(tmp_path) -> None:
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        with Client(f"http://127.0.0.1:{port}", KEY) as client:
            train = client.upload_dataset(csv_bytes(mixed_classification(n=240)), "train.csv")
            spec = {"task": "classification", "target": "label", "training": {"epochs": 8}}
            job = client.wait_for_job(client.create_job(train["id"], spec)["id"], timeout=120)
            assert job["status"] == "succeeded", job["error"]
            model_id = job["model_id"]

            rows = mixed_classification(n=ROWS, seed=11)
            del rows["label"]
            ids = [f"customer-{i}" for i in range(ROWS)]
            scored = client.upload_dataset(csv_bytes({"id": ids, **rows}), "customers.csv")
            assert scored["rows"] == ROWS

            results: dict[str, pa.Table] = {}
            for fmt in ("parquet", "csv"):
                batch = client.create_batch_prediction(model_id, scored["id"], format=fmt)
                assert batch["status"] == "queued" and batch["id_column"] == "id"
                done, seen = follow(client, batch["id"])
                assert done["status"] == "succeeded", done["error"]
                assert done["attempts"] == 1
                # Progress is reported per chunk, only ever forwards, to the last row.
                assert all(p["rows_total"] == ROWS for p in seen)
                done_counts = [p["rows_done"] for p in seen]
                assert done_counts == sorted(done_counts)
                assert set(done_counts) <= {0, CHUNK_ROWS, 2 * CHUNK_ROWS, ROWS}
                assert (done.progress.rows_done, done.progress.rows_total) == (ROWS, ROWS)

                content = io.BytesIO(client.batch_prediction_result(done["id"]))
                results[fmt] = pacsv.read_csv(content) if fmt == "csv" else pq.read_table(content)

            expected = predict_like_the_batch(client, model_id, rows)
            for result in results.values():
                assert_equal_to_predict(result, ids, expected)
    finally:
        stop(run)


def test_an_image_models_batch_prediction_runs_on_a_worker(tmp_path) -> None:
    """An NPZ of images scored on a real worker: one result row per image, indexed by `row`,
    equal to predict; the same model explained through the SDK as a saliency map."""
    rng = np.random.default_rng(0)
    y = np.repeat([3, 7], 60)
    x = (np.where(y == 7, 200, 40)[:, None, None] + rng.integers(-30, 30, (120, 8, 8))).astype(
        np.uint8
    )
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        with Client(f"http://127.0.0.1:{port}", KEY) as client:
            images = client.upload_dataset(npz_bytes(x=x, y=y), "shades.npz")
            spec = {
                "task": "classification",
                "target": "y",
                "model": {"family": "cnn", "filters": [4]},
                "training": {"epochs": 5, "learning_rate": 0.01},
            }
            job = client.wait_for_job(client.create_job(images["id"], spec)["id"], timeout=120)
            assert job["status"] == "succeeded", job["error"]
            model_id = job["model_id"]

            batch = client.create_batch_prediction(model_id, images["id"], format="csv")
            done, _ = follow(client, batch["id"])
            assert done["status"] == "succeeded", done["error"]
            assert (done.progress.rows_done, done.progress.rows_total) == (120, 120)
            result = pacsv.read_csv(io.BytesIO(client.batch_prediction_result(done["id"])))
            assert result.column_names == ["row", "label", "probability_3", "probability_7"]
            assert result.column("row").to_pylist() == list(range(120))
            expected = client.predict(model_id, x.tolist())
            assert result.column("label").to_pylist() == [p["label"] for p in expected]

            explained = client.explain_model(model_id, [x[0].tolist()], target=7, n_steps=16)
            assert explained.method == "integrated_gradients"
            assert np.array(explained.explanations[0].attributions).shape == (8, 8)
    finally:
        stop(run)
