"""Issue 17, points 3 and 4 through the API: attention layers (in a layers list, with an
embedding's padding mask, and as the rnn family's `attention`) and SMOTE sampling, checked by
POST /v1/specs/validate and trained for a few epochs as jobs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Api, assert_invalid
from tests.sample_data import csv_bytes, npz_bytes

STEPS, VOCABULARY = 10, 16

TOKEN_LAYERS = {
    "layers": [
        {"type": "embedding", "num_embeddings": VOCABULARY, "dim": 8, "padding_idx": 0},
        {"type": "residual", "layers": [{"type": "self_attention", "heads": 2}]},
        {"type": "attention_pooling", "hidden": 4},
    ]
}


def upload(api: Api, content: bytes, filename: str) -> str:
    response = api.upload(content, filename)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def validate(api: Api, dataset_id: str, spec: dict):
    return api.post("/v1/specs/validate", json={"dataset_id": dataset_id, "spec": spec})


@pytest.fixture
def tokens_id(api: Api) -> str:
    """Token sequences of 3..10 codes padded with 0; class 1 when code 7 occurs."""
    rng = np.random.default_rng(0)
    n = 160
    x = np.zeros((n, STEPS), dtype=np.int64)
    y = np.arange(n) % 2
    for i in range(n):
        length = int(rng.integers(3, STEPS + 1))
        row = rng.choice([c for c in range(1, VOCABULARY) if c != 7], size=length)
        if y[i]:
            row[rng.integers(0, length)] = 7
        x[i, :length] = row
    return upload(api, npz_bytes(x=x, y=y, kind=np.array("vector")), "tokens.npz")


@pytest.fixture
def sequences_id(api: Api) -> str:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 12, 2)).astype(np.float32)
    y = (x[:, :, 0].mean(axis=1) > 0).astype(np.int64)
    return upload(api, npz_bytes(x=x, y=y), "sequences.npz")


@pytest.fixture
def imbalanced_id(api: Api) -> str:
    """240 rows, one in five of class "rare": two numbers and a colour."""
    rng = np.random.default_rng(2)
    n = 240
    rare = np.arange(n) % 5 == 0
    colour = np.where(rare & (rng.random(n) < 0.7), "red", rng.choice(["green", "blue"], size=n))
    columns = {
        "x1": (rng.normal(size=n) + 2.0 * rare).tolist(),
        "x2": rng.normal(size=n).tolist(),
        "colour": colour.tolist(),
        "label": np.where(rare, "rare", "common").tolist(),
    }
    return upload(api, csv_bytes(columns), "imbalanced.csv")


def train_job(api: Api, run_job, dataset_id: str, spec: dict) -> dict:
    spec = {**spec, "training": {"epochs": 3, "learning_rate": 0.01, **spec.get("training", {})}}
    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert run_job(job_id) == "succeeded", api.get(f"/v1/jobs/{job_id}").json()
    return api.get(f"/v1/jobs/{job_id}").json()


# --- attention ---------------------------------------------------------------------------------


def test_validate_gives_the_attention_layers_shapes_and_parameters(api: Api, tokens_id) -> None:
    response = validate(
        api, tokens_id, {"task": "classification", "target": "y", "model": TOKEN_LAYERS}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rows = [(r["name"], r["type"], r["output_shape"], r["parameters"]) for r in body["layers"]]
    assert rows == [
        ("layers[0]", "embedding", [STEPS, 8], VOCABULARY * 8),
        ("layers[1]", "residual", [STEPS, 8], (8 * 24 + 24) + (8 * 8 + 8)),
        ("layers[2]", "attention_pooling", [8], (8 * 4 + 4) + (4 + 1)),
        ("head[0]", "dense", [2], 8 * 2 + 2),
    ]
    assert body["parameters"] == sum(r[3] for r in rows)


def test_validate_gives_the_rnn_familys_attention_row(api: Api, sequences_id) -> None:
    model = {
        "family": "rnn",
        "hidden": 8,
        "bidirectional": True,
        "attention": "self",
        "attention_heads": 4,
    }
    response = validate(
        api, sequences_id, {"task": "classification", "target": "y", "model": model}
    )
    assert response.status_code == 200, response.text
    rows = {r["name"]: r for r in response.json()["layers"]}
    assert rows["recurrent"]["output_shape"] == [12, 16]
    assert rows["attention"]["type"] == "self_attention_pooling"
    assert rows["attention"]["output_shape"] == [16]
    assert rows["attention"]["parameters"] == (16 * 48 + 48) + (16 * 16 + 16) + (16 + 1)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (
            {"family": "rnn", "hidden": 6, "attention": "self", "attention_heads": 4},
            "spec.model.attention_heads",
        ),
        ({"family": "rnn", "attention_heads": 2}, "spec.model.attention_heads"),
        ({"family": "rnn", "attention": "everywhere"}, "spec.model.attention"),
        ({"layers": [{"type": "self_attention", "heads": 3}]}, "spec.model.layers[0].heads"),
        ({"layers": [{"type": "flatten"}, {"type": "attention_pooling"}]}, "spec.model.layers[1]"),
    ],
)
def test_attention_that_does_not_fit_is_422_naming_the_field(
    api: Api, sequences_id, model, field
) -> None:
    response = validate(
        api, sequences_id, {"task": "classification", "target": "y", "model": model}
    )
    assert_invalid(response, field)


def test_padding_idx_beyond_the_codes_is_422(api: Api, tokens_id) -> None:
    layers = [{"type": "embedding", "num_embeddings": VOCABULARY, "dim": 4, "padding_idx": 99}]
    spec = {"task": "classification", "target": "y", "model": {"layers": layers}}
    assert_invalid(validate(api, tokens_id, spec), "spec.model.layers[0].padding_idx")


def test_codes_beyond_the_embedding_are_422(api: Api, tokens_id) -> None:
    layers = [{"type": "embedding", "num_embeddings": 5, "dim": 4}, {"type": "flatten"}]
    spec = {"task": "classification", "target": "y", "model": {"layers": layers}}
    error = assert_invalid(validate(api, tokens_id, spec), "spec.model.layers[0].num_embeddings")
    assert "0..4" in error["message"]


def test_a_padded_token_model_with_attention_trains_and_predicts(api: Api, run_job, tokens_id):
    job = train_job(
        api, run_job, tokens_id, {"task": "classification", "target": "y", "model": TOKEN_LAYERS}
    )
    epochs = api.get(f"/v1/jobs/{job['id']}/metrics").json()["epochs"]
    assert len(epochs) == 3 and all(np.isfinite(e["values"]["train_loss"]) for e in epochs)
    short = [3, 7, 2] + [0] * (STEPS - 3)
    response = api.post(
        f"/v1/models/{job['model_id']}/predict", json={"instances": [short, [0] * STEPS]}
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert len(predictions) == 2 and predictions[0]["label"] in (0, 1)
    # A code the embedding does not have is the caller's mistake, named, not a 500.
    response = api.post(
        f"/v1/models/{job['model_id']}/predict",
        json={"instances": [short, [99] * STEPS, [1.5] * STEPS]},
    )
    error = assert_invalid(response, "instances[1]")
    assert "instances[2]" in [d["field"] for d in error["details"]]
    assert f"0..{VOCABULARY - 1}" in error["message"]


def test_an_rnn_with_attention_pooling_trains(api: Api, run_job, sequences_id) -> None:
    model = {"family": "rnn", "cell": "gru", "hidden": 8, "attention": "pooling"}
    job = train_job(
        api, run_job, sequences_id, {"task": "classification", "target": "y", "model": model}
    )
    assert job["spec"]["model"]["attention"] == "pooling"


# --- SMOTE -------------------------------------------------------------------------------------


def test_a_smotenc_job_balances_only_its_training_rows(api: Api, run_job, imbalanced_id) -> None:
    spec = {"task": "classification", "target": "label", "seed": 3}
    plain = train_job(api, run_job, imbalanced_id, spec)
    smote = train_job(
        api, run_job, imbalanced_id, {**spec, "data": {"sampling": {"method": "smotenc"}}}
    )

    sampling = smote["report"]["sampling"]
    assert sampling["method"] == "smotenc"
    assert sampling["before"]["rare"] < sampling["before"]["common"]
    assert sampling["after"] == {"common": sampling["before"]["common"]} | {
        "rare": sampling["before"]["common"]
    }
    assert sampling["synthetic"] == sampling["before"]["common"] - sampling["before"]["rare"]
    rows, plain_rows = smote["report"]["rows"], plain["report"]["rows"]
    assert rows["train"] == plain_rows["train"] + sampling["synthetic"]
    # Validation and test are the same rows, scored the same way: only training changed.
    assert (rows["validation"], rows["test"]) == (plain_rows["validation"], plain_rows["test"])
    assert smote["report"]["evaluation"]["rows"] == plain["report"]["evaluation"]["rows"]
    assert (
        sum(map(sum, smote["report"]["evaluation"]["confusion_matrix"]["matrix"])) == rows["test"]
    )


def test_validate_refuses_smote_on_categorical_features(api: Api, imbalanced_id) -> None:
    spec = {"task": "classification", "target": "label", "data": {"sampling": {"method": "smote"}}}
    error = assert_invalid(validate(api, imbalanced_id, spec), "spec.data.sampling.method")
    assert "'colour'" in error["message"] and "smotenc" in error["message"]
    spec["features"] = ["x1", "x2"]
    assert validate(api, imbalanced_id, spec).status_code == 200


def test_a_class_smaller_than_k_neighbors_plus_one_is_422(api: Api, imbalanced_id) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"sampling": {"method": "smotenc", "k_neighbors": 60}},
    }
    error = assert_invalid(validate(api, imbalanced_id, spec), "spec.data.sampling.k_neighbors")
    assert "needs at least 61" in error["message"]
    response = api.post("/v1/jobs", json={"dataset_id": imbalanced_id, "spec": spec})
    assert_invalid(response, "spec.data.sampling.k_neighbors")


def test_smote_for_regression_is_422(api: Api, imbalanced_id) -> None:
    spec = {
        "task": "regression",
        "target": "x1",
        "data": {"sampling": {"method": "smote"}},
    }
    error = assert_invalid(validate(api, imbalanced_id, spec), "spec.data.sampling.method")
    assert "classification" in error["message"]


def test_k_neighbors_without_smote_is_422(api: Api, imbalanced_id) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"sampling": {"method": "oversample", "k_neighbors": 3}},
    }
    assert_invalid(validate(api, imbalanced_id, spec), "spec.data.sampling.k_neighbors")
