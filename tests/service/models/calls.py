"""The model endpoints as the model route tests call them, and what every good answer holds."""

from __future__ import annotations

from tests.conftest import Api


def predict(api: Api, model_id: str, instances: list):
    return api.post(f"/v1/models/{model_id}/predict", json={"instances": instances})


def encode(api: Api, model_id: str, instances: list):
    return api.post(f"/v1/models/{model_id}/encode", json={"instances": instances})


def answer_from(model_id: str, response) -> dict:
    """The body of a 200 answer, which names the model that gave it."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model_id"] == model_id
    return body
