"""Issue 17 points 3 and 4 end to end on the embedded default (`trainyard run`): a padded
token dataset trained with self-attention and attention pooling, and an imbalanced table
trained with SMOTENC, each validated first and then trained for a few epochs by the worker."""

from __future__ import annotations

import numpy as np
import pytest

from client import Client
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready
from tests.sample_data import csv_bytes, npz_bytes

pytestmark = pytest.mark.e2e
KEY = "ty_e2e_" + "a" * 24
STEPS, VOCABULARY = 10, 16


def padded_tokens(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3..10 codes padded with 0; class 1 when code 7 occurs."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, STEPS), dtype=np.int64)
    y = np.arange(n) % 2
    for i in range(n):
        length = int(rng.integers(3, STEPS + 1))
        row = rng.choice([c for c in range(1, VOCABULARY) if c != 7], size=length)
        if y[i]:
            row[rng.integers(0, length)] = 7
        x[i, :length] = row
    return x, y


def imbalanced_columns(n: int = 300, seed: int = 1) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    rare = np.arange(n) % 6 == 0
    colour = np.where(rare & (rng.random(n) < 0.7), "red", rng.choice(["green", "blue"], size=n))
    return {
        "x1": (rng.normal(size=n) + 2.5 * rare).tolist(),
        "x2": rng.normal(size=n).tolist(),
        "colour": colour.tolist(),
        "label": np.where(rare, "rare", "common").tolist(),
    }


def test_attention_on_padded_tokens_and_smotenc_train_through_the_worker(tmp_path) -> None:
    port = free_port()
    run = trainyard("run", env=service_env(tmp_path / "data", port, KEY), log=tmp_path / "log")
    try:
        wait_until_ready(f"http://127.0.0.1:{port}", [run])
        with Client(f"http://127.0.0.1:{port}", KEY, timeout=300) as client:
            x, y = padded_tokens()
            tokens = client.upload_dataset(
                npz_bytes(x=x, y=y, kind=np.array("vector")), "tokens.npz"
            )
            spec = {
                "task": "classification",
                "target": "y",
                "model": {
                    "layers": [
                        {
                            "type": "embedding",
                            "num_embeddings": VOCABULARY,
                            "dim": 16,
                            "padding_idx": 0,
                        },
                        {"type": "residual", "layers": [{"type": "self_attention", "heads": 2}]},
                        {"type": "attention_pooling", "hidden": 8},
                    ]
                },
                "training": {"epochs": 25, "learning_rate": 0.01},
            }
            table = client.validate_spec(tokens["id"], spec)
            assert [row["type"] for row in table["layers"]] == [
                "embedding",
                "residual",
                "attention_pooling",
                "dense",
            ]
            job = client.wait_for_job(client.create_job(tokens["id"], spec)["id"])
            assert job["status"] == "succeeded", job
            # "Is code 7 anywhere?" needs every step to be looked at: attention does.
            assert job["report"]["evaluation"]["metrics"]["accuracy"] >= 0.8
            fresh_x, fresh_y = padded_tokens(n=60, seed=5)
            predicted = client.predict(job["model_id"], fresh_x.tolist())
            accuracy = np.mean([p["label"] for p in predicted] == fresh_y)
            assert accuracy >= 0.8

            people = client.upload_dataset(csv_bytes(imbalanced_columns()), "people.csv")
            spec = {
                "task": "classification",
                "target": "label",
                "data": {"sampling": {"method": "smotenc", "k_neighbors": 3}},
                "training": {"epochs": 10},
            }
            client.validate_spec(people["id"], spec)
            job = client.wait_for_job(client.create_job(people["id"], spec)["id"])
            assert job["status"] == "succeeded", job
            sampling = job["report"]["sampling"]
            assert sampling["after"]["rare"] == sampling["after"]["common"]
            assert sampling["synthetic"] > 0
            # Test rows keep the world's balance: about one in six is rare.
            confusion = job["report"]["evaluation"]["confusion_matrix"]
            totals = np.array(confusion["matrix"]).sum(axis=1)
            rows = dict(zip(confusion["labels"], totals, strict=True))
            assert rows["rare"] < rows["common"] / 2
    finally:
        stop(run)
