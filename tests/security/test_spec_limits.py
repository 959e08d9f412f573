"""A spec over a configured limit (epochs, batch size, layers, parameters) is a 422 that names
the field and the limit, from `POST /v1/specs/validate` and from `POST /v1/jobs` alike."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api, running_backend
from tests.sample_data import csv_bytes, mixed_classification

LIMITS = {"max_epochs": 5, "max_batch_size": 64, "max_layers": 4, "max_parameters": 2_000}
ROUTES = ["/v1/specs/validate", "/v1/jobs"]


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[tuple[Api, str]]:
    with running_backend("sqlite", tmp_path_factory.mktemp("limits"), **LIMITS) as backend:
        api = Api(backend.client, backend.new_project_key())
        # 240 rows: over max_batch_size, so batch_size "full" is over it too.
        response = api.upload(csv_bytes(mixed_classification()), "mixed.csv")
        assert response.status_code == 201, response.text
        yield api, response.json()["id"]


def _post(limited, route: str, model: dict | None = None, **training):
    api, dataset_id = limited
    spec = {"task": "classification", "target": "label", "training": {"epochs": 1, **training}}
    if model is not None:
        spec["model"] = model
    return api.post(route, json={"dataset_id": dataset_id, "spec": spec})


def _assert_over_limit(response, field: str, limit: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_spec"
    assert error["message"].startswith(f"{field}: "), error["message"]
    assert limit in error["message"], error["message"]
    assert error["details"][0]["field"] == field


@pytest.mark.parametrize("route", ROUTES)
def test_epochs_over_the_limit(limited, route: str) -> None:
    _assert_over_limit(_post(limited, route, epochs=6), "spec.training.epochs", "limit of 5")


@pytest.mark.parametrize("route", ROUTES)
def test_batch_size_over_the_limit(limited, route: str) -> None:
    response = _post(limited, route, batch_size=65)
    _assert_over_limit(response, "spec.training.batch_size", "limit of 64")
    assert response.json()["error"]["details"][0]["limit"] == 64


@pytest.mark.parametrize("route", ROUTES)
def test_a_full_batch_over_the_limit(limited, route: str) -> None:
    response = _post(limited, route, batch_size="full")
    _assert_over_limit(response, "spec.training.batch_size", "limit of 64")
    assert "240 rows" in response.json()["error"]["message"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"family": "mlp", "hidden": [4, 4, 4, 4, 4]}, "spec.model.hidden"),
        ({"layers": [{"type": "dense", "units": 4}] * 5}, "spec.model.layers"),
        # Layers inside a residual block count too: 1 + 2 + 1 + 1 = 5.
        (
            {
                "layers": [
                    {
                        "type": "residual",
                        "layers": [{"type": "dense", "units": 4}, {"type": "dense", "units": 4}],
                    },
                    {"type": "dense", "units": 4},
                    {"type": "dense", "units": 4},
                ]
            },
            "spec.model.layers",
        ),
    ],
)
def test_layers_over_the_limit(limited, route: str, model: dict, field: str) -> None:
    response = _post(limited, route, model=model)
    _assert_over_limit(response, field, "limit of 4")
    assert "5 layers" in response.json()["error"]["message"]


@pytest.mark.parametrize("route", ROUTES)
def test_parameters_over_the_limit(limited, route: str) -> None:
    response = _post(limited, route, model={"family": "mlp", "hidden": [64, 64]})
    _assert_over_limit(response, "spec.model", "limit of 2,000")


@pytest.mark.parametrize("route", ROUTES)
def test_a_spec_at_the_limits_is_accepted(limited, route: str) -> None:
    response = _post(
        limited, route, model={"family": "mlp", "hidden": [8, 8, 8, 8]}, epochs=5, batch_size=64
    )
    assert response.status_code in (200, 202), response.text
