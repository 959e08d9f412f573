from __future__ import annotations

import json
from pathlib import Path

from service.cli import openapi_document

COMMITTED = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_committed_openapi_document_matches_the_app() -> None:
    committed = json.loads(COMMITTED.read_text())
    assert committed == openapi_document(), (
        "openapi/openapi.json is stale: run `make openapi` and commit the result"
    )


def test_every_operation_has_a_stable_id_and_documents_our_error_shape() -> None:
    document = openapi_document()
    ids = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith("/ErrorResponse"), (method, path, status)
    assert len(ids) == len(set(ids))
    assert "create_job" in ids and "predict" in ids and "upload_dataset" in ids
