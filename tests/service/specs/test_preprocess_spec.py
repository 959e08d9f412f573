"""`data.preprocess` reaches the dry run: a setting that cannot apply is a 422 naming it."""

from __future__ import annotations

from tests.conftest import Api


def test_a_preprocess_field_that_does_not_apply_is_422_naming_it(api: Api, dataset_id: str) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "data": {"preprocess": {"columns": {"x1": {"encoding": "onehot"}}}},
    }

    response = api.post("/v1/specs/validate", json={"dataset_id": dataset_id, "spec": spec})

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    fields = [detail["field"] for detail in error["details"]]
    assert "spec.data.preprocess.columns.x1.encoding" in fields, error
    assert "categorical" in error["message"]
