"""Every route of openapi/openapi.json has an SDK method, on `Client` and on `AsyncClient`,
and that method sends that route's request: a new route cannot be forgotten by the SDK."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from client import AsyncClient, Client

OPENAPI = json.loads((Path(__file__).parents[2] / "openapi" / "openapi.json").read_text())

# The SDK's name where it is not the operation id (names the first SDK had, kept).
METHOD_OF = {
    "get_dataset_profile": "dataset_profile",
    "get_job_metrics": "job_metrics",
    "stream_job_events": "stream_job",
    "stream_study_events": "stream_study",
    "list_study_trials": "study_trials",
    "list_model_versions": "model_versions",
    "set_model_alias": "set_alias",
    "delete_model_alias": "delete_alias",
    "get_batch_prediction_result": "batch_prediction_result",
    "stream_batch_prediction_events": "stream_batch_prediction",
}

OPERATIONS = [
    (operation["operationId"], method.upper(), path)
    for path, methods in OPENAPI["paths"].items()
    for method, operation in methods.items()
]


class Sent(Exception):
    """Raised by the transport with the request it was asked to send."""

    def __init__(self, request: httpx.Request) -> None:
        self.request = request


def record(request: httpx.Request) -> httpx.Response:
    raise Sent(request)


def dummy_arguments(method: Any) -> list[Any]:
    """A value for each required parameter, by its annotation."""
    values = []
    for parameter in inspect.signature(method).parameters.values():
        if parameter.default is not inspect.Parameter.empty or parameter.kind in (
            parameter.VAR_KEYWORD,
            parameter.VAR_POSITIONAL,
        ):
            continue
        annotation = str(parameter.annotation)
        if annotation.startswith("bytes"):
            values.append(b"a,b\n1,2\n")
        elif annotation.startswith("int"):
            values.append(1)
        elif annotation.startswith("dict"):
            values.append({})
        elif annotation.startswith("list[str]"):
            values.append(["job_a", "job_b"])
        elif annotation.startswith("list"):
            values.append([{}])
        else:
            values.append("x1")
    return values


def matches(template: str, path: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+(/[^/]+)*?", re.escape(template))
    return re.fullmatch(pattern, path) is not None


def sent_by_sync(name: str) -> httpx.Request:
    client = Client("http://sdk.test", "ty_key", transport=httpx.MockTransport(record))
    method = getattr(client, name)
    with pytest.raises(Sent) as sent:
        answer = method(*dummy_arguments(method))
        if inspect.isgenerator(answer):
            next(answer)
    return sent.value.request


def sent_by_async(name: str) -> httpx.Request:
    async def call() -> None:
        async with AsyncClient(
            "http://sdk.test", "ty_key", transport=httpx.MockTransport(record)
        ) as client:
            method = getattr(client, name)
            answer = method(*dummy_arguments(method))
            if inspect.isasyncgen(answer):
                await anext(answer)
            else:
                assert inspect.isawaitable(answer), f"AsyncClient.{name} is not awaitable"
                await answer

    with pytest.raises(Sent) as sent:
        asyncio.run(call())
    return sent.value.request


@pytest.mark.parametrize(("operation_id", "http_method", "template"), OPERATIONS)
def test_every_route_has_a_client_method(operation_id: str, http_method: str, template: str):
    name = METHOD_OF.get(operation_id, operation_id)
    assert callable(getattr(Client, name, None)), f"no Client.{name} for {operation_id}"
    for request in (sent_by_sync(name), sent_by_async(name)):
        assert request.method == http_method, (operation_id, request.method)
        assert matches(template, request.url.path), (operation_id, request.url.path)
        assert request.headers["Authorization"] == "Bearer ty_key"


def test_the_mapping_names_only_real_operations() -> None:
    assert set(METHOD_OF) <= {operation_id for operation_id, _, _ in OPERATIONS}
