"""The model registry: names and versions, aliases, and model references."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from client.sdk import ApiError, Client
from engine.spec import Spec
from service.app import create_app
from service.models.service import registered_name
from tests.conftest import Api, Backend

CLEARLY_YES = {"x1": 2.5, "x2": 2.5, "colour": "red"}


@pytest.fixture
def train(api: Api, submit, run_job):
    """Train a model of a dataset (a few epochs) and return the job's model id."""

    def train(dataset_id: str, **spec) -> str:
        job = submit(dataset_id, training={"epochs": 3}, **spec)
        assert run_job(job["id"]) == "succeeded"
        return api.get(f"/v1/jobs/{job['id']}").json()["model_id"]

    return train


def predict(api: Api, ref: str):
    return api.post(f"/v1/models/{ref}/predict", json={"instances": [CLEARLY_YES]})


def set_alias(api: Api, name: str, alias: str, version: int):
    return api.client.put(
        f"/v1/models/{name}/aliases/{alias}", headers=api.headers, json={"version": version}
    )


def delete_alias(api: Api, name: str, alias: str):
    return api.client.delete(f"/v1/models/{name}/aliases/{alias}", headers=api.headers)


# --- naming -----------------------------------------------------------------------------------


def test_versions_number_up_under_one_name(api: Api, dataset_id: str, train) -> None:
    first, second = train(dataset_id), train(dataset_id)
    assert api.get(f"/v1/models/{first}").json()["version"] == 1
    assert api.get(f"/v1/models/{second}").json()["version"] == 2


def test_model_name_in_the_spec_names_the_model(api: Api, dataset_id: str, train) -> None:
    model_id = train(dataset_id, model_name="churn")
    model = api.get(f"/v1/models/{model_id}").json()
    assert (model["name"], model["version"]) == ("churn", 1)
    assert {e["name"] for e in api.get("/v1/models").json()["items"]} == {"churn"}


@pytest.mark.parametrize("bad", ["a/b", "x@y", "-lead", "", "x" * 201])
def test_an_unsafe_model_name_is_422(api: Api, dataset_id: str, bad: str) -> None:
    spec = {"task": "classification", "target": "label", "model_name": bad}
    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
    assert response.status_code == 422, response.text
    fields = [d["field"] for d in response.json()["error"]["details"]]
    assert any("model_name" in f for f in fields), fields


def test_a_dataset_name_is_made_safe() -> None:
    spec = Spec(task="classification", target="label")
    assert registered_name(spec, "sales 2024/q1@eu") == "sales-2024-q1-eu"
    assert registered_name(spec, "_.hidden") == "hidden"
    assert registered_name(spec, "@@@") == "model"
    assert registered_name(spec, "é" * 300) == "model"
    assert len(registered_name(spec, "a" * 300)) == 200


# --- names and versions -----------------------------------------------------------------------


def test_list_names(api: Api, dataset_id: str, train) -> None:
    train(dataset_id)
    train(dataset_id)
    train(dataset_id, model_name="other")
    assert set_alias(api, "mixed", "production", 1).status_code == 200
    page = api.get("/v1/models").json()
    assert page["total"] == 2
    # The most recently trained name first.
    assert [e["name"] for e in page["items"]] == ["other", "mixed"]
    mixed = page["items"][1]
    assert (mixed["latest_version"], mixed["versions"]) == (2, 2)
    assert mixed["aliases"] == {"production": 1}
    assert mixed["created_at"] <= mixed["updated_at"]
    assert (
        api.get("/v1/models", params={"limit": 1, "offset": 1}).json()["items"][0]["name"]
        == "mixed"
    )


def test_list_versions(api: Api, dataset_id: str, train) -> None:
    first = train(dataset_id)
    second = train(dataset_id, features=["x1", "colour"], model={"family": "mlp"})
    assert set_alias(api, "mixed", "staging", 2).status_code == 200
    response = api.get("/v1/models/mixed/versions")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["total"] == 2
    newest, oldest = page["items"]
    assert (newest["id"], newest["version"], oldest["id"], oldest["version"]) == (
        second,
        2,
        first,
        1,
    )
    assert newest["aliases"] == ["staging"] and oldest["aliases"] == []
    assert newest["dataset_id"] == dataset_id
    assert newest["spec"] == {"task": "classification", "family": "mlp", "features": 2}
    assert oldest["spec"] == {"task": "classification", "family": None, "features": None}
    # The test split's metrics, as in the job's report.
    job = api.get(f"/v1/jobs/{newest['job_id']}").json()
    assert newest["test_metrics"] == job["report"]["evaluation"]["metrics"]
    assert "accuracy" in newest["test_metrics"]


def test_versions_of_an_unknown_name_is_404(api: Api, other_api: Api, train, dataset_id) -> None:
    train(dataset_id)
    assert api.get("/v1/models/nothing/versions").status_code == 404
    response = other_api.get("/v1/models/mixed/versions")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


# --- references -------------------------------------------------------------------------------


def test_every_reference_resolves(api: Api, dataset_id: str, train) -> None:
    first, second = train(dataset_id), train(dataset_id)
    set_alias(api, "mixed", "production", 1)
    for ref, model_id in [
        (first, first),
        ("mixed/versions/1", first),
        ("mixed/versions/2", second),
        ("mixed@production", first),
    ]:
        response = api.get(f"/v1/models/{ref}")
        assert response.status_code == 200, (ref, response.text)
        assert response.json()["id"] == model_id
        assert predict(api, ref).json()["model_id"] == model_id


@pytest.mark.parametrize(
    "ref",
    [
        "mixed",
        "mixed@staging",
        "nothing@production",
        "mixed/versions/3",
        "mixed/versions/x",
        "mixed/versions/99999999999999999999",
        "mixed/other/1",
    ],
)
def test_an_unknown_reference_is_404(api: Api, dataset_id: str, train, ref: str) -> None:
    train(dataset_id)
    set_alias(api, "mixed", "production", 1)
    for response in (api.get(f"/v1/models/{ref}"), predict(api, ref)):
        assert response.status_code == 404, (ref, response.text)
        assert response.json()["error"]["code"] == "not_found"


def test_another_projects_alias_does_not_resolve(
    api: Api, other_api: Api, dataset_id: str, train
) -> None:
    train(dataset_id)
    set_alias(api, "mixed", "production", 1)
    assert other_api.get("/v1/models/mixed@production").status_code == 404
    assert predict(other_api, "mixed/versions/1").status_code == 404
    assert set_alias(other_api, "mixed", "production", 1).status_code == 404
    assert delete_alias(other_api, "mixed", "production").status_code == 404
    assert api.get("/v1/models").json()["items"][0]["aliases"] == {"production": 1}


# --- aliases ----------------------------------------------------------------------------------


def test_moving_an_alias_takes_effect_on_the_next_request(api: Api, dataset_id: str, train) -> None:
    first, second = train(dataset_id), train(dataset_id)
    assert set_alias(api, "mixed", "production", 1).status_code == 200
    assert predict(api, "mixed@production").json()["model_id"] == first

    response = set_alias(api, "mixed", "production", 2)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["alias"], body["version"]) == ("mixed", "production", 2)
    assert body["model_id"] == second
    # No restart, no cache flush: the next request follows the alias.
    after = predict(api, "mixed@production")
    assert after.status_code == 200, after.text
    assert after.json()["model_id"] == second


def test_another_api_process_follows_a_moved_alias(
    backend: Backend, api: Api, dataset_id: str, train
) -> None:
    """A second API process on the same database learns of the move from the database: at
    once with `lookup_cache_seconds` = 0 (by default within a second)."""
    first, second = train(dataset_id), train(dataset_id)
    set_alias(api, "mixed", "production", 1)
    settings = backend.settings.model_copy(update={"lookup_cache_seconds": 0})
    with TestClient(create_app(settings)) as other_process:
        elsewhere = Api(other_process, api.key)
        assert predict(elsewhere, "mixed@production").json()["model_id"] == first
        assert set_alias(api, "mixed", "production", 2).status_code == 200
        assert predict(elsewhere, "mixed@production").json()["model_id"] == second


def test_delete_alias(api: Api, dataset_id: str, train) -> None:
    train(dataset_id)
    set_alias(api, "mixed", "staging", 1)
    response = delete_alias(api, "mixed", "staging")
    assert response.status_code == 204, response.text
    assert predict(api, "mixed@staging").status_code == 404
    assert api.get("/v1/models").json()["items"][0]["aliases"] == {}
    assert delete_alias(api, "mixed", "staging").status_code == 404


@pytest.mark.parametrize(
    ("name", "version"), [("nothing", 1), ("mixed", 2)], ids=["name", "version"]
)
def test_alias_to_an_unknown_name_or_version_is_404(
    api: Api, dataset_id: str, train, name: str, version: int
) -> None:
    train(dataset_id)
    response = set_alias(api, name, "production", version)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert delete_alias(api, "nothing", "production").status_code == 404


@pytest.mark.parametrize("body", [{"version": 0}, {"version": "one"}, {}])
def test_alias_needs_a_version(api: Api, body: dict) -> None:
    response = api.client.put("/v1/models/mixed/aliases/production", headers=api.headers, json=body)
    assert response.status_code == 422, response.text


def test_an_unsafe_alias_is_422(api: Api, dataset_id: str, train) -> None:
    train(dataset_id)
    response = set_alias(api, "mixed", "-prod", 1)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_input"


def test_alias_routes_need_a_key(backend: Backend) -> None:
    client = backend.client
    assert client.put("/v1/models/m/aliases/a", json={"version": 1}).status_code == 401
    assert client.delete("/v1/models/m/aliases/a").status_code == 401
    assert client.get("/v1/models/m/versions").status_code == 401


# --- the Python client ------------------------------------------------------------------------


def test_the_client_speaks_the_registry(backend: Backend, api: Api, dataset_id: str, train) -> None:
    first, second = train(dataset_id), train(dataset_id)
    sdk = Client("http://testserver", "unused")
    sdk.http = TestClient(backend.app, headers=api.headers)

    assert [e["name"] for e in sdk.list_models()["items"]] == ["mixed"]
    assert [v["id"] for v in sdk.model_versions("mixed")["items"]] == [second, first]
    assert sdk.set_alias("mixed", "production", 1)["model_id"] == first
    assert sdk.get_model("mixed@production")["id"] == first
    assert len(sdk.predict("mixed@production", [CLEARLY_YES])) == 1
    sdk.delete_alias("mixed", "production")
    with pytest.raises(ApiError) as raised:
        sdk.delete_alias("mixed", "production")
    assert (raised.value.status, raised.value.code) == (404, "not_found")
