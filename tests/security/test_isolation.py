"""Isolation: every route in the OpenAPI document, called with a second project's key and ids
owned by the first, answers 404 (or 403) and never shows the first project's data."""

from __future__ import annotations

import re
from typing import Any

from service.auth.repository import get_active_key
from service.auth.service import hash_secret
from tests.conftest import Api, Backend

PATH_PARAM = re.compile(r"\{(\w+)\}")

# A valid body per operation that takes one, so a refusal is about ownership, not validation.
# A new operation with a body must be added here: the walk fails on one it does not know.
BODIES: dict[str, Any] = {
    "create_job": lambda ids: {
        "dataset_id": ids["dataset_id"],
        "spec": {"task": "classification", "target": "label"},
    },
    "validate_spec": lambda ids: {
        "dataset_id": ids["dataset_id"],
        "spec": {"task": "classification", "target": "label"},
    },
    "predict": lambda ids: {"instances": [{"x1": 1.0, "x2": 2.0, "colour": "red"}]},
    "encode": lambda ids: {"instances": [{"x1": 1.0, "x2": 2.0, "colour": "red"}]},
    "explain_model": lambda ids: {"instances": [{"x1": 1.0, "x2": 2.0, "colour": "red"}]},
    "sample_model": lambda ids: {"n": 2, "seed": 0},
    "create_key": lambda ids: {"name": "intruder"},
    "create_project": lambda ids: {"name": "intruder"},
    "create_project_key": lambda ids: {"name": "intruder"},
    "set_model_alias": lambda ids: {"version": 1},
    "create_batch_prediction": lambda ids: {"dataset_id": ids["dataset_id"]},
    "create_evaluation": lambda ids: {"dataset_id": ids["dataset_id"]},
    "create_study": lambda ids: {
        "dataset_id": ids["dataset_id"],
        "spec": {"task": "classification", "target": "label"},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 0.1}},
        "max_trials": 1,
    },
}
# Required query parameters that name owned rows, and the owned value to send in each.
OWNED_QUERIES: dict[str, Any] = {
    "ids": lambda ids: f"{ids['job_id']},{ids['second_job_id']}",
}
# Operations that create something of the caller's own from nothing of anyone else's.
OWN_CREATIONS = {"upload_dataset", "create_key"}


def operations(backend: Backend):
    for path, item in backend.app.openapi()["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_a_second_project_sees_nothing_of_the_first(
    backend: Backend, api: Api, other_api: Api, trained_model_id: str
) -> None:
    owner = api
    job_id = owner.get("/v1/jobs").json()["items"][0]["id"]
    dataset_id = owner.get("/v1/datasets").json()["items"][0]["id"]
    key_id = owner.get("/v1/keys").json()["items"][0]["id"]
    second_job = owner.post("/v1/jobs", json=BODIES["create_job"]({"dataset_id": dataset_id}))
    assert second_job.status_code == 202, second_job.text
    model_name = owner.get(f"/v1/models/{trained_model_id}").json()["name"]
    alias = "production"
    response = owner.client.put(
        f"/v1/models/{model_name}/aliases/{alias}", headers=owner.headers, json={"version": 1}
    )
    assert response.status_code == 200, response.text
    response = owner.post(
        f"/v1/models/{trained_model_id}/batch-predictions", json={"dataset_id": dataset_id}
    )
    assert response.status_code == 202, response.text
    batch_prediction_id = response.json()["id"]
    response = owner.post(
        f"/v1/models/{trained_model_id}/evaluations", json={"dataset_id": dataset_id}
    )
    assert response.status_code == 202, response.text
    evaluation_id = response.json()["id"]
    response = owner.post("/v1/studies", json=BODIES["create_study"]({"dataset_id": dataset_id}))
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    with backend.app.state.session_factory() as session:
        project_id = get_active_key(session, hash_secret(owner.key)).project_id
    ids = {
        "project_id": project_id,
        "dataset_id": dataset_id,
        "job_id": job_id,
        "model_id": trained_model_id,
        "ref": trained_model_id,
        "name": model_name,
        "alias": alias,
        "key_id": key_id,
        "batch_prediction_id": batch_prediction_id,
        "evaluation_id": evaluation_id,
        "second_job_id": second_job.json()["id"],
        "study_id": study_id,
    }
    before = {name: owner.get(url).json() for name, url in _owner_views(ids).items()}
    walked = []

    # A model is named three ways: walk its routes with each.
    for ref in (trained_model_id, f"{model_name}/versions/1", f"{model_name}@{alias}"):
        ids["ref"] = ref
        for path, method, operation in operations(backend):
            op_id = operation["operationId"]
            if not path.startswith("/v1/") or op_id in OWN_CREATIONS:
                continue
            params = PATH_PARAM.findall(path)
            unknown = [p for p in params if p not in ids]
            assert not unknown, f"{op_id}: no owned id to try for {unknown}; add it to the walk"
            url = path.format(**{p: ids[p] for p in params})
            kwargs: dict[str, Any] = {"params": _required_query(operation, ids)}
            if "requestBody" in operation:
                assert op_id in BODIES, f"{op_id} takes a body; add a valid one to BODIES"
                kwargs["json"] = BODIES[op_id](ids)
            response = other_api.client.request(
                method.upper(), url, headers=other_api.headers, **kwargs
            )
            walked.append(op_id)

            refers_to_owned = (
                bool(params)
                or any(
                    isinstance(v, str) and v in ids.values()
                    for v in kwargs.get("json", {}).values()
                )
                or any(name in OWNED_QUERIES for name in kwargs["params"])
            )
            if refers_to_owned:
                assert response.status_code in (403, 404), (
                    op_id,
                    response.status_code,
                    response.text,
                )
                assert response.json()["error"]["code"] in ("not_found", "forbidden"), op_id
            else:
                assert response.status_code < 500, (op_id, response.text)
            if response.status_code < 400:
                # A list or a creation of the caller's own: none of the owner's ids in it.
                leaked = [owned for owned in ids.values() if owned in response.text]
                assert not leaked, (op_id, leaked)

    assert {
        "get_dataset",
        "get_job",
        "cancel_job",
        "predict",
        "explain_model",
        "sample_model",
        "revoke_key",
        "list_model_versions",
        "set_model_alias",
        "delete_model_alias",
        "export_model",
        "compare_jobs",
        "get_study",
        "list_study_trials",
        "cancel_study",
        "stream_job_events",
        "stream_study_events",
        "stream_batch_prediction_events",
        "create_evaluation",
        "get_evaluation",
        "list_model_evaluations",
        "cancel_evaluation",
        "stream_evaluation_events",
        "create_project",
        "list_projects",
        "create_project_key",
        "list_workers",
    } <= set(walked)
    after = {name: owner.get(url).json() for name, url in _owner_views(ids).items()}
    assert after == before, "a refused call changed the owner's data"


def _required_query(operation: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """A valid value for each required query parameter (the owned ids it names, or the first
    of an enum), so a refusal is about ownership, not a missing parameter."""
    query = {}
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "query" and parameter.get("required"):
            name, schema = parameter["name"], parameter["schema"]
            if name in OWNED_QUERIES:
                query[name] = OWNED_QUERIES[name](ids)
                continue
            assert "enum" in schema, f"no valid value known for {name}; add it to OWNED_QUERIES"
            query[name] = schema["enum"][0]
    return query


def _owner_views(ids: dict[str, str]) -> dict[str, str]:
    return {
        "dataset": f"/v1/datasets/{ids['dataset_id']}",
        "job": f"/v1/jobs/{ids['job_id']}",
        "model": f"/v1/models/{ids['model_id']}",
        "models": "/v1/models",
        "versions": f"/v1/models/{ids['name']}/versions",
        "keys": "/v1/keys",
        "study": f"/v1/studies/{ids['study_id']}",
        "evaluation": f"/v1/evaluations/{ids['evaluation_id']}",
    }
