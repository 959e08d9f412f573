"""`/v1/specs/validate` (and the submit, which runs the same check) on task generation: the
generator's and the discriminator's layer tables, and a 422 naming the field for every
option a GAN cannot honour."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import Api, assert_invalid
from tests.sample_data import csv_bytes, mixed_classification, npz_bytes
from tests.service.specs.test_routes import upload, validate

GENERATE = {"task": "generation"}


@pytest.fixture
def table_id(api: Api) -> str:
    return upload(api, csv_bytes(mixed_classification()), "mixed.csv")


@pytest.fixture
def digits_id(api: Api) -> str:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 17, (40, 8, 8)).astype(np.float32)
    return upload(api, npz_bytes(x=x, y=np.arange(40) % 4), "digits.npz")


def test_a_table_gan_lists_generator_then_discriminator_layers(api: Api, table_id: str) -> None:
    spec = {**GENERATE, "target": "label", "model": {"hidden": [16, 8], "latent_dim": 4}}
    response = validate(api, table_id, spec)
    assert response.status_code == 200, response.text
    body = response.json()
    names = [layer["name"] for layer in body["layers"]]
    assert names[0] == "generator[0]" or names[0].startswith("generator.")
    assert any(n.startswith("discriminator.") for n in names)
    # noise 4 + 2 classes in; one encoded row out (x1, x2, 3 colours)
    assert body["input_shape"] == [6]
    assert body["output_shape"] == [5]
    first = body["layers"][0]
    assert first["output_shape"] == [16] and first["parameters"] == 6 * 16 + 16
    assert body["parameters"] == sum(layer["parameters"] for layer in body["layers"])
    assert body["model"]["family"] == "gan" and body["model"]["conditional"] is True
    assert body["layers"][-1]["output_shape"] == [1]  # the discriminator's logit


def test_an_image_gan_is_a_dcgan_with_spectral_norm(api: Api, digits_id: str) -> None:
    spec = {**GENERATE, "model": {"filters": [16, 8], "spectral_norm": True}}
    response = validate(api, digits_id, spec)
    assert response.status_code == 200, response.text
    body = response.json()
    generator = [row for row in body["layers"] if row["name"].startswith("generator.")]
    assert generator[-1]["output_shape"] == [1, 8, 8]
    assert body["input_shape"] == [32]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({**GENERATE, "model": {"family": "mlp"}}, "spec.model"),
        ({"task": "classification", "target": "label", "model": {"family": "gan"}}, "spec.model"),
        ({**GENERATE, "model": {"family": "gan", "conditional": True}}, "spec.model"),
        ({**GENERATE, "training": {"loss": "mse"}}, "spec.training.loss"),
        ({**GENERATE, "training": {"optimizer": "sgd"}}, "spec.training.optimizer"),
        ({**GENERATE, "training": {"early_stopping": {"patience": 3}}}, "spec.training"),
        ({**GENERATE, "data": {"sampling": {"method": "oversample"}}}, "spec.data.sampling.method"),
        ({**GENERATE, "data": {"split": {"folds": 3}}}, "spec.data.split.folds"),
        (
            {**GENERATE, "data": {"preprocess": {"columns": {"x1": {"binning": {"bins": 3}}}}}},
            "spec.data.preprocess.columns.x1.binning",
        ),
        (
            {**GENERATE, "data": {"preprocess": {"categorical": {"encoding": "ordinal"}}}},
            "spec.data.preprocess.categorical.encoding",
        ),
        ({**GENERATE, "model": {"latent_dim": 0}}, "spec.model.latent_dim"),
    ],
)
def test_options_a_gan_cannot_honour_are_422s_naming_the_field(
    api: Api, table_id: str, spec: dict, field: str
) -> None:
    assert_invalid(validate(api, table_id, spec), field)


def test_images_the_blocks_cannot_halve_are_a_422_on_filters(api: Api, digits_id: str) -> None:
    spec = {**GENERATE, "model": {"filters": [8, 8, 8, 8]}}
    error = assert_invalid(validate(api, digits_id, spec), "spec.model.filters")
    assert "divisible by 16" in error["message"]


def test_a_submitted_job_runs_the_same_check(api: Api, table_id: str) -> None:
    response = api.post(
        "/v1/jobs",
        json={"dataset_id": table_id, "spec": {**GENERATE, "training": {"loss": "mae"}}},
    )
    assert_invalid(response, "spec.training.loss")


def test_a_study_of_a_gan_is_a_422_on_the_task(api: Api, table_id: str) -> None:
    response = api.post(
        "/v1/studies",
        json={
            "dataset_id": table_id,
            "spec": GENERATE,
            "search_space": {
                "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-2}
            },
            "max_trials": 2,
        },
    )
    assert_invalid(response, "spec.task")
