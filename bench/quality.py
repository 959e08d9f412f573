"""Model quality end to end through the API: upload, train, predict held-out data, score.

Starts `trainyard run` (embedded default) and trains one job per task:
- digits_cnn: scikit-learn digits (8x8) as NPZ, the image CNN preset, stratified 25% test.
- sequence_lstm / sequence_cnn: classify the frequency of a noisy sine (length 100, 4 classes).
- forecast_gru: RMSE of a next-step forecast of a seasonal series (forecast_naive_rmse: the
  naive last value's, which it must beat).
- autoencoder_auc: trained on normal rows, ROC AUC of its anomaly score on injected anomalies.
- digits_dbn (`--case dbn` runs only it): the vanishing-gradient experiment. Digits as a table
  of 64 min-max scaled pixels, a deep sigmoid MLP (4 hidden layers of 256) trained with SGD
  from its default initialisation, the same MLP after DBN pretraining (20 RBM epochs per
  layer, CD-1, bernoulli visible units), and a ReLU + batch-norm MLP of the same widths: the
  same fine-tuning budget (epochs, optimizer, learning rate) for all three, test accuracy.
The last line is JSON. `--quick` trains fewer epochs (what the tests do).

    .venv/bin/python -m bench.quality [--quick] [--case all|dbn]
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes

KEY = "ty_quality_" + "q" * 24


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def train(client: Client, data: bytes, filename: str, spec: dict) -> str:
    dataset = client.upload_dataset(data, filename)
    job = client.wait_for_job(client.create_job(dataset["id"], spec)["id"], timeout=1800)
    if job["status"] != "succeeded":
        raise RuntimeError(f"{filename}: {job['status']} {job['error']}")
    return job["model_id"]


def predict_in_batches(client: Client, model_id: str, instances: list, batch: int = 256) -> list:
    out: list = []
    for start in range(0, len(instances), batch):
        out += client.predict(model_id, instances[start : start + batch])
    return out


def accuracy(client: Client, model_id: str, x: np.ndarray, y: np.ndarray) -> float:
    predictions = predict_in_batches(client, model_id, x.tolist())
    return float(np.mean([p["label"] == int(t) for p, t in zip(predictions, y, strict=True)]))


def digits_cnn(client: Client, epochs: int) -> float:
    digits = load_digits()
    x, y = digits.images.astype(np.float32), digits.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=0
    )
    spec = {
        "task": "classification",
        "target": "y",
        "model": {"family": "cnn", "preset": "image"},
        "training": {"epochs": epochs, "batch_size": 64, "early_stopping": {"patience": 15}},
    }
    model_id = train(client, npz_bytes(x=x_train, y=y_train), "digits.npz", spec)
    return accuracy(client, model_id, x_test, y_test)


def noisy_sines(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, size=n)
    frequencies = np.array([1.0, 2.0, 3.0, 4.0])[labels]
    t = np.linspace(0, 1, 100)
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    x = np.sin(2 * np.pi * frequencies[:, None] * t[None, :] + phase)
    x += rng.normal(scale=0.3, size=x.shape)
    return x[:, :, None].astype(np.float32), labels


def sequence_task(client: Client, model: dict, epochs: int) -> float:
    x_train, y_train = noisy_sines(1600, seed=0)
    x_test, y_test = noisy_sines(400, seed=1)
    spec = {
        "task": "classification",
        "target": "y",
        "model": model,
        "training": {"epochs": epochs, "batch_size": 64, "early_stopping": {"patience": 10}},
    }
    model_id = train(client, npz_bytes(x=x_train, y=y_train), "sines.npz", spec)
    return accuracy(client, model_id, x_test, y_test)


def seasonal_series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 10 + 0.01 * t + 3 * np.sin(2 * np.pi * t / 24) + rng.normal(scale=0.3, size=n)


def forecast_gru(client: Client, epochs: int) -> dict[str, float]:
    series = seasonal_series(3000)
    window, split = 48, 2400
    spec = {
        "task": "forecasting",
        "target": "value",
        "model": {"family": "rnn", "cell": "gru", "hidden": 32},
        # The series past `split` is this bench's own test: every training row stays in use.
        "data": {"window": window, "horizon": 1, "split": {"test": 0.0}},
        "training": {"epochs": epochs, "batch_size": 64, "early_stopping": {"patience": 10}},
    }
    model_id = train(client, csv_bytes({"value": series[:split].tolist()}), "series.csv", spec)
    starts = range(split - window, len(series) - window)
    instances = [[{"value": v} for v in series[s : s + window]] for s in starts]
    truth = np.array([series[s + window] for s in starts])
    predicted = np.array([p["value"] for p in predict_in_batches(client, model_id, instances)])
    naive = np.array([series[s + window - 1] for s in starts])
    rmse = float(np.sqrt(np.mean((predicted - truth) ** 2)))
    naive_rmse = float(np.sqrt(np.mean((naive - truth) ** 2)))
    return {"rmse": rmse, "naive_rmse": naive_rmse}


def autoencoder_auc(client: Client, epochs: int) -> float:
    rng = np.random.default_rng(0)
    # Normal rows lie near a 3-dimensional subspace of 12 columns; anomalies do not.
    basis = rng.normal(size=(3, 12))
    normal = rng.normal(size=(2000, 3)) @ basis + rng.normal(scale=0.1, size=(2000, 12))
    test_normal = rng.normal(size=(300, 3)) @ basis + rng.normal(scale=0.1, size=(300, 12))
    anomalies = rng.normal(scale=np.abs(normal).mean() * 1.5, size=(60, 12))
    columns = [f"f{i}" for i in range(12)]
    spec = {
        "task": "reconstruction",
        "model": {"family": "autoencoder", "hidden": [32], "latent": 3},
        "training": {"epochs": epochs, "batch_size": 64, "early_stopping": {"patience": 10}},
    }
    table = {c: normal[:, i].tolist() for i, c in enumerate(columns)}
    model_id = train(client, csv_bytes(table), "normal.csv", spec)
    rows = np.vstack([test_normal, anomalies])
    instances = [dict(zip(columns, row.tolist(), strict=True)) for row in rows]
    scores = [p["anomaly_score"] for p in predict_in_batches(client, model_id, instances)]
    labels = [0] * len(test_normal) + [1] * len(anomalies)
    return float(roc_auc_score(labels, scores))


DBN_HIDDEN = [256, 256, 256, 256]
# RBM epochs per layer: with 5, fine-tuning reached 0.48 test accuracy in the 100 epochs.
DBN_EPOCHS = 20


def digits_dbn(client: Client, epochs: int) -> dict[str, float]:
    digits = load_digits()
    x, y = digits.data, digits.target
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, stratify=y, random_state=0
    )
    columns = [f"p{i}" for i in range(x.shape[1])]
    table = {c: x_train[:, i].tolist() for i, c in enumerate(columns)} | {"y": y_train.tolist()}
    data = csv_bytes(table)
    training = {
        "epochs": epochs,
        "batch_size": 32,
        "optimizer": "sgd",
        "momentum": 0.9,
        "learning_rate": 0.05,
        "early_stopping": None,
    }
    models = {
        "sigmoid": {"hidden": DBN_HIDDEN, "activation": "sigmoid", "dropout": 0.0},
        "sigmoid_dbn": {
            "hidden": DBN_HIDDEN,
            "activation": "sigmoid",
            "dropout": 0.0,
            "pretrain": {"method": "dbn", "epochs": DBN_EPOCHS, "cd_k": 1},
        },
        "relu_batch_norm": {
            "hidden": DBN_HIDDEN,
            "activation": "relu",
            "batch_norm": True,
            "dropout": 0.0,
        },
    }
    result: dict[str, float] = {}
    instances = [dict(zip(columns, row.tolist(), strict=True)) for row in x_test]
    for name, model in models.items():
        spec = {
            "task": "classification",
            "target": "y",
            "model": model,
            "training": training,
            "data": {"preprocess": {"numeric": {"scale": "minmax"}}},
        }
        started = time.monotonic()
        model_id = train(client, data, f"digits-{name}.csv", spec)
        predictions = predict_in_batches(client, model_id, instances)
        correct = [p["label"] == int(t) for p, t in zip(predictions, y_test, strict=True)]
        result[f"digits_{name}_accuracy"] = float(np.mean(correct))
        result[f"digits_{name}_seconds"] = round(time.monotonic() - started, 1)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few epochs, as in the tests")
    parser.add_argument("--case", choices=["all", "dbn"], default="all")
    args = parser.parse_args()
    epochs = 8 if args.quick else 100
    with tempfile.TemporaryDirectory() as scratch:
        port = free_port()
        env = service_env(Path(scratch) / "data", port, KEY)
        run = trainyard("run", env=env, log=Path(scratch) / "run.log")
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url, [run])
            started = time.monotonic()
            with Client(base_url, KEY, timeout=300) as client:
                if args.case == "dbn":
                    result = {"epochs": epochs, **digits_dbn(client, epochs), "seconds": None}
                    result["seconds"] = round(time.monotonic() - started, 1)
                    print(json.dumps(result))
                    return
                forecast = forecast_gru(client, epochs)
                result = {
                    "digits_cnn": digits_cnn(client, epochs),
                    "sequence_lstm": sequence_task(
                        client, {"family": "rnn", "cell": "lstm", "hidden": 64}, epochs
                    ),
                    "sequence_cnn": sequence_task(
                        client, {"family": "cnn", "preset": "sequence"}, epochs
                    ),
                    "forecast_gru": forecast["rmse"],
                    "forecast_naive_rmse": forecast["naive_rmse"],
                    "autoencoder_auc": autoencoder_auc(client, epochs),
                    **digits_dbn(client, epochs),
                    "seconds": None,
                }
            result["seconds"] = round(time.monotonic() - started, 1)
        finally:
            stop(run)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
