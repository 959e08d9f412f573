"""The predict lane (service/models/lane.py) answers predict and encode before the app's
middleware and router: every answer must be the one the documented routes give."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from tests.conftest import Api, Backend

ROW = {"x1": 0.5, "x2": -1.0, "colour": "red"}


def routes_only(app: FastAPI):
    """The app without its lane: the middleware stack and router FastAPI builds."""
    stack = FastAPI.build_middleware_stack(app)

    async def asgi(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app
        await stack(scope, receive, send)

    return asgi


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("predict", {"instances": [ROW, {**ROW, "x1": 3.0}]}, {}),
        ("predict", {"dataframe_split": {"columns": ["x1"], "data": [[1.0]]}}, {}),
        ("predict", "not json", {"content-type": "application/json"}),
        ("predict", "x1,x2,colour\n1,2,red\n", {"content-type": "text/csv"}),
        ("predict", {"instances": [ROW]}, {"content-type": "text/plain"}),
        ("predict", {"instances": [ROW]}, {"authorization": "Bearer ty_unknown"}),
        ("predict", {"instances": [ROW]}, {"authorization": ""}),
        ("encode", {"instances": [ROW]}, {}),
    ],
)
def test_the_lane_answers_as_the_routes_do(
    backend: Backend, api: Api, trained_model_id: str, path: str, body, headers: dict
) -> None:
    url = f"/v1/models/{trained_model_id}/{path}"
    sent = {"headers": {**api.headers, **headers}}
    sent.update({"content": body} if isinstance(body, str) else {"json": body})
    through_lane = backend.client.post(url, **sent)
    with TestClient(routes_only(backend.app)) as routed:
        through_routes = routed.post(url, **sent)

    assert through_lane.status_code == through_routes.status_code
    assert through_lane.json() == through_routes.json()
    for header in ("content-type", "www-authenticate"):
        assert through_lane.headers.get(header) == through_routes.headers.get(header)


def test_an_unknown_model_is_a_404_through_the_lane(api: Api) -> None:
    response = api.post("/v1/models/churn@production/predict", json={"instances": [ROW]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_other_methods_on_the_predict_path_reach_the_router(api: Api) -> None:
    response = api.client.put("/v1/models/churn@production/predict", headers=api.headers)
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
