"""The SDK's retries, idempotency keys and errors, against a scripted transport (the same
behaviours through a real server are in tests/e2e/test_sdk.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import httpx
import pytest

from client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    RateLimited,
    Retry,
    ServiceUnavailable,
    ValidationError,
)
from client.models import Job
from client.sdk import Call, get, one, post

FAST = Retry(attempts=4, backoff=0.001, max_backoff=0.01)
JOB = {"id": "job_1", "status": "queued", "dataset_id": "ds_1"}


def error(status: int, code: str, **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": f"{code} happened", "details": [{"f": 1}]}}
    return httpx.Response(status, json=body, headers=headers)


class Script:
    """Answers the requests in turn from `answers` (a response, or an exception to raise),
    keeping each request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def client_for(script: Script, retry: Retry = FAST) -> Client:
    return Client("http://sdk.test", "ty_k", retry=retry, transport=httpx.MockTransport(script))


def test_a_429_is_retried_after_its_retry_after() -> None:
    script = Script(
        error(429, "rate_limited", **{"Retry-After": "0"}), httpx.Response(200, json=JOB)
    )
    job = client_for(script).get_job("job_1")
    assert job.id == "job_1" and len(script.requests) == 2


def test_retry_after_is_honoured_and_a_long_one_gives_up() -> None:
    call = get("/v1/jobs", one(Job))
    asked = error(429, "rate_limited", **{"Retry-After": "2"})
    assert 2.0 <= Retry(backoff=0.5).wait(call, 1, asked) <= 2.5
    too_long = error(429, "rate_limited", **{"Retry-After": "600"})
    assert Retry(max_retry_after=60).wait(call, 1, too_long) is None


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    retry = Retry(backoff=1.0, max_backoff=5.0)
    waits = [retry.backoff_after(n) for n in range(1, 8) for _ in range(50)]
    assert all(0 <= w <= 5.0 for w in waits)
    assert max(retry.backoff_after(1) for _ in range(200)) <= 1.0
    assert len({round(w, 6) for w in waits}) > 100  # jittered, not a fixed schedule


def test_a_503_on_a_get_is_retried_a_bounded_number_of_times() -> None:
    script = Script(*[error(503, "unavailable")] * 3)
    with pytest.raises(ServiceUnavailable) as raised:
        client_for(script, Retry(attempts=3, backoff=0.001)).get_job("job_1")
    assert len(script.requests) == 3 and raised.value.code == "unavailable"


def test_a_post_without_an_idempotency_key_is_not_resent_after_a_503_or_a_lost_answer() -> None:
    script = Script(error(503, "unavailable"))
    with pytest.raises(ServiceUnavailable):
        client_for(script).cancel_job("job_1")
    script = Script(httpx.ReadTimeout("lost"))
    with pytest.raises(httpx.ReadTimeout):
        client_for(script).create_study("ds_1", {}, {})
    assert len(script.requests) == 1


def test_a_connection_never_opened_is_retried_for_any_request() -> None:
    script = Script(httpx.ConnectError("refused"), httpx.Response(202, json=JOB))
    assert client_for(script).cancel_job("job_1").status == "queued"
    assert len(script.requests) == 2


def test_a_create_sends_one_automatic_idempotency_key_across_its_retries() -> None:
    script = Script(
        httpx.ReadTimeout("lost"), error(503, "unavailable"), httpx.Response(202, json=JOB)
    )
    client_for(script).create_job("ds_1", {"task": "classification", "target": "label"})
    keys = [r.headers.get("Idempotency-Key") for r in script.requests]
    assert len(keys) == 3 and keys[0] and len(set(keys)) == 1
    # A second call is a second create: a new key.
    script.answers.append(httpx.Response(202, json=JOB))
    client_for(script).create_job("ds_1", {})
    assert script.requests[-1].headers["Idempotency-Key"] != keys[0]


def test_a_given_idempotency_key_is_sent_and_automatic_ones_can_be_turned_off() -> None:
    script = Script(httpx.Response(201, json={"id": "ds_1"}), httpx.Response(201, json={}))
    client_for(script).upload_dataset(b"a\n1\n", idempotency_key="upload-1")
    assert script.requests[0].headers["Idempotency-Key"] == "upload-1"
    plain = Client(
        "http://sdk.test", "k", idempotency_keys=False, transport=httpx.MockTransport(script)
    )
    plain.upload_dataset(b"a\n1\n")
    assert "Idempotency-Key" not in script.requests[1].headers


@pytest.mark.parametrize(
    ("status", "kind"),
    [(404, NotFound), (409, Conflict), (422, ValidationError), (429, RateLimited)],
)
def test_errors_carry_the_api_code_message_and_details(status: int, kind: type) -> None:
    script = Script(error(status, "some_code", **{"Retry-After": "7"}))
    with pytest.raises(kind) as raised:
        client_for(script, Retry(attempts=1)).get_job("job_1")
    exc = raised.value
    assert isinstance(exc, ApiError)
    assert (exc.status, exc.code, exc.message) == (status, "some_code", "some_code happened")
    assert exc.details == [{"f": 1}]
    if kind is RateLimited:
        assert exc.retry_after == 7.0


def test_an_error_body_that_is_not_json_still_raises_an_api_error() -> None:
    script = Script(httpx.Response(502, text="<html>bad gateway</html>"))
    with pytest.raises(ApiError) as raised:
        client_for(script).get_job("job_1")
    assert raised.value.status == 502 and "bad gateway" in raised.value.message


def test_the_async_client_retries_the_same_way() -> None:
    script = Script(
        error(429, "rate_limited", **{"Retry-After": "0"}), httpx.Response(200, json=JOB)
    )

    async def main() -> Job:
        async with AsyncClient(
            "http://sdk.test", "k", retry=FAST, transport=httpx.MockTransport(script)
        ) as client:
            return await client.get_job("job_1")

    assert asyncio.run(main()).id == "job_1" and len(script.requests) == 2


def test_pages_are_followed_to_the_total() -> None:
    def page(request: httpx.Request) -> httpx.Response:
        offset, limit = int(request.url.params["offset"]), int(request.url.params["limit"])
        items = [
            {"id": f"job_{i}", "status": "succeeded"} for i in range(offset, min(offset + limit, 5))
        ]
        return httpx.Response(
            200, json={"items": items, "total": 5, "limit": limit, "offset": offset}
        )

    client = Client("http://sdk.test", "k", transport=httpx.MockTransport(page))
    assert [j.id for j in client.iter_jobs(status="succeeded", page_size=2)] == [
        f"job_{i}" for i in range(5)
    ]


def test_calls_describe_their_safety() -> None:
    read: Callable = one(Job)
    assert get("/x", read).resendable
    assert not post("/x", read).resendable
    assert post("/x", read, "key").resendable
    assert Call("DELETE", "/x", read, resendable=True).resendable


def test_a_dropped_stream_reconnects_from_the_last_event_id() -> None:
    def body(*events: str, drop: bool) -> Iterator[bytes]:
        for event in events:
            yield event.encode()
        if drop:
            raise httpx.RemoteProtocolError("peer closed connection")

    first = body('id: 1\nevent: progress\ndata: {"epoch": 1}\n\n', ": ping\n\n", drop=True)
    rest = body(
        'id: 2\nevent: progress\ndata: {"epoch": 2}\n\n',
        "id: 3\nevent: end\ndata: {}\n\n",
        drop=False,
    )
    script = Script(
        httpx.Response(200, stream=Stream(first)), httpx.Response(200, stream=Stream(rest))
    )
    events = list(client_for(script).stream_job("job_1"))
    assert [e.id for e in events] == ["1", "2", "3"] and events[-1].type == "end"
    assert "Last-Event-ID" not in script.requests[0].headers
    assert script.requests[1].headers["Last-Event-ID"] == "1"


class Stream(httpx.SyncByteStream):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks


def test_the_async_stream_reconnects_the_same_way() -> None:
    class AsyncStream(httpx.AsyncByteStream):
        def __init__(self, *events: str, drop: bool) -> None:
            self.events, self.drop = events, drop

        async def __aiter__(self):
            for event in self.events:
                yield event.encode()
            if self.drop:
                raise httpx.ReadError("connection reset")

    script = Script(
        httpx.Response(200, stream=AsyncStream("id: 7\nevent: log\ndata: {}\n\n", drop=True)),
        httpx.Response(200, stream=AsyncStream("id: 8\nevent: end\ndata: {}\n\n", drop=False)),
    )

    async def main() -> list[str | None]:
        async with AsyncClient("http://sdk.test", "k", transport=httpx.MockTransport(script)) as c:
            return [event.id async for event in c.stream_study("stu_1")]

    assert asyncio.run(main()) == ["7", "8"]
    assert script.requests[1].headers["Last-Event-ID"] == "7"
    assert script.requests[1].url.path == "/v1/studies/stu_1/events"
