"""A project manages its own keys: create (secret shown once), list (never the secret),
revoke (refused from the next request on)."""

from __future__ import annotations

from tests.conftest import Api


def _delete(api: Api, url: str, key: str | None = None):
    headers = {"Authorization": f"Bearer {key}"} if key else api.headers
    return api.client.delete(url, headers=headers)


def test_a_new_key_works_and_its_secret_is_shown_once(api: Api) -> None:
    created = api.post("/v1/keys", json={"name": "ci"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["name"] == "ci" and body["secret"].startswith(body["prefix"])

    second = Api(api.client, body["secret"])
    assert second.get("/v1/datasets").status_code == 200

    listed = api.get("/v1/keys").json()["items"]
    assert {k["id"] for k in listed} >= {body["id"]}
    assert all("secret" not in k and "secret_hash" not in k for k in listed)
    assert body["secret"] not in api.get("/v1/keys").text


def test_a_revoked_key_is_refused_on_the_next_request(api: Api) -> None:
    created = api.post("/v1/keys", json={"name": "temporary"}).json()
    temporary = Api(api.client, created["secret"])
    assert temporary.get("/v1/jobs").status_code == 200

    revoked = _delete(api, f"/v1/keys/{created['id']}")
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    refused = temporary.get("/v1/jobs")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    # The project's other key is untouched.
    assert api.get("/v1/jobs").status_code == 200


def test_the_last_active_key_cannot_be_revoked(api: Api) -> None:
    (only,) = [k for k in api.get("/v1/keys").json()["items"] if k["revoked_at"] is None]
    response = _delete(api, f"/v1/keys/{only['id']}")
    assert response.status_code == 409
    assert "last active key" in response.json()["error"]["message"]
    assert api.get("/v1/jobs").status_code == 200


def test_keys_of_another_project_are_invisible(api: Api, other_api: Api) -> None:
    theirs = other_api.post("/v1/keys", json={"name": "theirs"}).json()
    assert theirs["id"] not in {k["id"] for k in api.get("/v1/keys").json()["items"]}
    assert _delete(api, f"/v1/keys/{theirs['id']}").status_code == 404
    assert Api(api.client, theirs["secret"]).get("/v1/jobs").status_code == 200


def test_a_key_name_is_validated(api: Api) -> None:
    response = api.post("/v1/keys", json={"name": ""})
    assert response.status_code == 422
    assert "name" in response.text


def test_a_revoked_key_is_refused_on_the_next_predict(api: Api, trained_model_id: str) -> None:
    # The predict path remembers keys it has seen (service/core/lookups.py); a revocation
    # through this process must still apply at once.
    created = api.post("/v1/keys", json={"name": "caller"}).json()
    caller = Api(api.client, created["secret"])
    url = f"/v1/models/{trained_model_id}/predict"
    body = {"instances": [{"x1": 0.5, "x2": -1.0, "colour": "red"}]}
    assert caller.post(url, json=body).status_code == 200

    assert _delete(api, f"/v1/keys/{created['id']}").status_code == 200

    refused = caller.post(url, json=body)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert api.post(url, json=body).status_code == 200


def test_predict_reads_the_authorization_header_as_every_other_route(
    api: Api, trained_model_id: str
) -> None:
    # Predict parses the header itself (auth/dependencies.py: bearer_secret), not through
    # FastAPI's HTTPBearer as the other routes do: both must accept and refuse alike.
    url = f"/v1/models/{trained_model_id}/predict"
    body = {"instances": [{"x1": 0.5, "x2": -1.0, "colour": "red"}]}
    headers = {
        "any case of the scheme, spaces around the key": f"bEaReR   {api.key} ",
        "no header": None,
        "another scheme": f"Basic {api.key}",
        "the scheme alone": "Bearer",
        "no scheme": api.key,
        "a wrong key": "Bearer ty_" + "x" * 32,
    }
    for case, value in headers.items():
        sent = {"Authorization": value} if value is not None else {}
        predicted = api.client.post(url, json=body, headers=sent)
        listed = api.client.get("/v1/keys", headers=sent)
        assert predicted.status_code == listed.status_code, case
        assert predicted.status_code == (200 if case.startswith("any case") else 401), case
