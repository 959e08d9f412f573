"""The predict lane: `POST /v1/models/{ref}/predict` and `/encode` are answered as soon as a
request reaches the app, before its middleware stack and router.

Other applications call predict in their own request paths, so its fixed cost per request
counts. Passing through Starlette's and FastAPI's layers (error, telemetry and exception
middleware, the router, the route's exit stacks and dependency solving) cost a single-row
predict of the bench's small model about 0.15 ms of its 0.75 ms (bench/predict.py, c1 p50).
The lane runs the very same route functions (`predict_call`, then `predict` or `encode` in
router.py) and answers their errors with the app's own handler, so callers see no difference;
router.py's routes still document the endpoints in OpenAPI.

Anything else, including these paths under another method or a `root_path`, goes through the
app as usual. Middleware added to the app does not see these two routes.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from service.core.errors import TrainyardError, error_response
from service.core.metrics import ROUTE_TEMPLATE
from service.models.router import encode, predict, predict_call

# As the routes' `/{ref:path}/predict` and `/{ref:path}/encode` match, prefix included.
ROUTES = re.compile(r"^/v1/models/(?P<ref>.*)/(?P<action>predict|encode)$")
ENDPOINTS = {"predict": predict, "encode": encode}
# The routes' own templates (router.py), for the request metrics (service/core/metrics.py).
TEMPLATES = {action: f"/v1/models/{{ref:path}}/{action}" for action in ENDPOINTS}


class PredictLane:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            ROUTES.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path")
            else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        endpoint = ENDPOINTS[found["action"]]
        scope[ROUTE_TEMPLATE] = TEMPLATES[found["action"]]
        request = Request(scope, receive, send)
        try:
            response = await endpoint(found["ref"], await predict_call(request))
        except TrainyardError as exc:
            response = error_response(exc)
        await response(scope, receive, send)
