"""Every operation in openapi/openapi.json, fed inputs generated from the document itself
(schemathesis), on the live app with a valid key: never a 5xx, and every answer matches what
the document says (status code, content type, body schema).

Bounded and derandomised so `make test` stays fast and a failure reproduces: a few examples
per operation. Bodies that need an existing id mostly answer 404 or 422; that is the point,
as long as those answers are documented. The multipart upload is included: schemathesis
generates its `file` and `name` parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import Backend, running_backend
from tests.sample_data import csv_bytes, mixed_classification

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
# The coverage phase walks every case a schema defines. The spec schema is large: its invalid
# variants alone are thousands of requests, so those two operations get the valid ones there
# (the fuzzing phase still sends them invalid input).
CONFIG = SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-operation-id": ["validate_spec", "create_job"],
                "phases": {"coverage": {"generation": {"mode": "positive"}}},
            }
        ]
    }
)
schema = schemathesis.openapi.from_path(DOCUMENT, config=CONFIG)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[tuple[Backend, dict[str, str]]]:
    # A small upload limit, so a generated file body cannot take long to refuse.
    with running_backend("sqlite", tmp_path_factory.mktemp("schemathesis"), max_upload_mb=1) as b:
        headers = {"Authorization": f"Bearer {b.new_project_key()}"}
        # One real dataset, so list and profile routes answer with content, not only empty pages.
        response = b.client.post(
            "/v1/datasets",
            headers=headers,
            files={"file": ("m.csv", csv_bytes(mixed_classification(n=40)), "text/csv")},
        )
        assert response.status_code == 201, response.text
        yield b, headers


@schema.parametrize()
@settings(
    max_examples=15,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_documented(case, live) -> None:
    backend, headers = live
    case.call_and_validate(app=backend.app, headers=headers, checks=CHECKS)


# What schemathesis found, kept as plain tests.


def test_a_binary_file_whose_first_line_is_not_utf8_is_a_422(live) -> None:
    backend, headers = live
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x00\x00"
    response = backend.client.post(
        "/v1/datasets", headers=headers, files={"file": ("file.png", png, "image/png")}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "bad_dataset"
    assert "UTF-8" in response.json()["error"]["message"]


def test_a_json_body_that_is_not_utf8_is_a_422(live) -> None:
    backend, headers = live
    response = backend.client.post(
        "/v1/keys",
        headers={**headers, "Content-Type": "application/json"},
        content=b"\xc5\x8c\xff\x03\t\x03\xff",
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["details"][0]["field"] == "body"
