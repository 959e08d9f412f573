"""The admin (the service's TRAINYARD_ADMIN_KEY) creates projects and their first keys over
HTTP; everything else stays per project, and neither kind of key reaches the other's routes."""

from __future__ import annotations

import uuid

from fastapi.testclient import TestClient

from service.app import create_app
from tests.conftest import ADMIN_KEY, Api, Backend, assert_invalid


def _admin(backend: Backend) -> Api:
    return Api(backend.client, ADMIN_KEY)


def _name() -> str:
    return f"team-{uuid.uuid4().hex[:8]}"


def test_the_admin_creates_a_project_whose_key_sees_only_its_own(
    backend: Backend, api: Api
) -> None:
    assert api.upload(b"x,label\n1,a\n2,b\n3,a\n", name="secret-of-a").status_code == 201
    name = _name()

    created = _admin(backend).post("/v1/projects", json={"name": name})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == name and body["id"].startswith("prj_")
    secret = body["key"]["secret"]
    assert secret.startswith(body["key"]["prefix"])

    project_b = Api(backend.client, secret)
    datasets = project_b.get("/v1/datasets")
    assert datasets.status_code == 200
    assert datasets.json()["items"] == [] and "secret-of-a" not in datasets.text
    # B manages its own keys from here: its first key is the one the admin was given.
    assert [k["id"] for k in project_b.get("/v1/keys").json()["items"]] == [body["key"]["id"]]

    listed = _admin(backend).get("/v1/projects", params={"limit": 200})
    assert listed.status_code == 200
    assert name in [p["name"] for p in listed.json()["items"]]
    assert "secret" not in listed.text and secret not in listed.text


def test_the_admin_adds_a_key_to_a_project(backend: Backend) -> None:
    project = _admin(backend).post("/v1/projects", json={"name": _name()}).json()

    added = _admin(backend).post(f"/v1/projects/{project['id']}/keys", json={"name": "ci"})
    assert added.status_code == 201, added.text
    key = added.json()
    assert key["name"] == "ci"
    listed = Api(backend.client, key["secret"]).get("/v1/keys")
    assert listed.status_code == 200
    assert {k["id"] for k in listed.json()["items"]} == {project["key"]["id"], key["id"]}

    missing = _admin(backend).post("/v1/projects/prj_nope/keys", json={"name": "ci"})
    assert missing.status_code == 404
    assert "prj_nope" in missing.json()["error"]["message"]


def test_a_project_key_cannot_call_the_admin_routes(api: Api) -> None:
    project_id = "prj_whatever"
    calls = [
        api.post("/v1/projects", json={"name": _name()}),
        api.get("/v1/projects"),
        api.post(f"/v1/projects/{project_id}/keys", json={"name": "x"}),
    ]
    for response in calls:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "forbidden"
        assert "admin key" in response.json()["error"]["message"]
    # No key at all: 401, as on every other route.
    assert api.client.get("/v1/projects").status_code == 401


def test_the_admin_key_is_no_project_key(backend: Backend) -> None:
    admin = _admin(backend)
    for url in ("/v1/datasets", "/v1/jobs", "/v1/keys", "/v1/models"):
        response = admin.get(url)
        assert response.status_code == 401, (url, response.text)
    predicted = admin.post("/v1/models/mdl_x/predict", json={"instances": [{"x": 1}]})
    assert predicted.status_code == 401


def test_a_duplicate_project_name_is_a_conflict(backend: Backend) -> None:
    name = _name()
    assert _admin(backend).post("/v1/projects", json={"name": name}).status_code == 201
    again = _admin(backend).post("/v1/projects", json={"name": name})
    assert again.status_code == 409, again.text
    error = again.json()["error"]
    assert error["details"] == [
        {"field": "name", "reason": f"a project named {name!r} exists already"}
    ]


def test_a_project_name_is_validated(backend: Backend) -> None:
    for name in ("", "   ", "x" * 201):
        assert_invalid(_admin(backend).post("/v1/projects", json={"name": name}), "name")
    assert_invalid(_admin(backend).post("/v1/projects", json={}), "name")
    assert_invalid(_admin(backend).get("/v1/projects", params={"limit": 0}), "limit")


def test_without_an_admin_key_the_admin_routes_are_off(backend: Backend) -> None:
    settings = backend.settings.model_copy(update={"admin_key": None})
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            for key in (ADMIN_KEY, None):
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = client.post("/v1/projects", json={"name": _name()}, headers=headers)
                assert response.status_code == 403, response.text
                error = response.json()["error"]
                assert error["code"] == "admin_key_not_configured"
                assert "TRAINYARD_ADMIN_KEY" in error["message"]
    finally:
        app.state.db_engine.dispose()
