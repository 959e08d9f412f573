"""The Python SDK: `Client` (sync) and `AsyncClient` (asyncio), the same methods on both.

How it is built, so a new route is one method:
- `Operations` holds every API call once. A method describes its request as a `Call`
  (method, path, parameters, body, how to read the answer, whether resending is safe) and
  hands it to `self._send`.
- `Client._send` executes a Call with an `httpx.Client` and returns the result;
  `AsyncClient._send` does the same with an `httpx.AsyncClient` and returns an awaitable.
  So on `AsyncClient` every method of `Operations` is awaited: `job = await c.get_job(id)`.
- The few calls that loop (`wait_for_*`, `iter_*`, `stream_*`) use `_wait`, `_iterate` and
  `stream_events`, which each client writes once in its own style.

Retries (`Retry`): 429 (after `Retry-After`) on any request, since the service refuses it
before doing any work; 503 and dropped connections on requests that are safe to resend
(GET, PUT, DELETE, and POSTs that carry an `Idempotency-Key`); a connection that could not
be opened on any request. Backoff is exponential with full jitter, bounded by `attempts`.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from client.errors import ApiError, error_from_response, retry_after_seconds
from client.events import Event, EventParser, parse_events
from client.models import (
    FINISHED,
    Alias,
    BatchPrediction,
    Dataset,
    DatasetProfile,
    Encoding,
    Evaluation,
    Health,
    Job,
    JobComparison,
    JobMetrics,
    Key,
    KeyCreated,
    KeyList,
    Model,
    ModelExplanation,
    ModelName,
    ModelVersion,
    Page,
    Prediction,
    Project,
    ProjectCreated,
    Resource,
    Samples,
    SpecCheck,
    Study,
    Trial,
    WorkerList,
)

__all__ = [
    "FINISHED",
    "ApiError",
    "AsyncClient",
    "Call",
    "Client",
    "Event",
    "Retry",
    "parse_events",
]

T = TypeVar("T")
R = TypeVar("R", bound=Resource)


# ---- one request, described once -------------------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    """A request and how to read its answer. `resendable`: sending it twice does what sending
    it once does (so a dropped connection or a 503 may be retried)."""

    method: str
    path: str
    read: Callable[[httpx.Response], T]
    params: dict[str, Any] | None = None
    json: Any = None
    files: Any = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    resendable: bool = False
    # Error statuses whose body is still the answer (`/readyz` answers 503 with its checks).
    accept: tuple[int, ...] = ()

    def request_options(self) -> dict[str, Any]:
        return {
            "params": self.params,
            "json": self.json,
            "files": self.files,
            "data": self.data,
            "headers": self.headers or None,
        }


def get(path: str, read: Callable[[httpx.Response], T], **options: Any) -> Call[T]:
    return Call("GET", path, read, resendable=True, **options)


def post(
    path: str,
    read: Callable[[httpx.Response], T],
    idempotency_key: str | None = None,
    **options: Any,
) -> Call[T]:
    """A POST; with an idempotency key (the service honours it) it is safe to resend."""
    if idempotency_key is None:
        return Call("POST", path, read, **options)
    headers = {"Idempotency-Key": idempotency_key}
    return Call("POST", path, read, headers=headers, resendable=True, **options)


def one(model: type[R]) -> Callable[[httpx.Response], R]:
    return lambda response: model.model_validate(response.json())


def page_of(model: type[R]) -> Callable[[httpx.Response], Page[R]]:
    return lambda response: Page[model].model_validate(response.json())


def content(response: httpx.Response) -> bytes:
    return response.content


def nothing(response: httpx.Response) -> None:
    return None


def paging(limit: int, offset: int, **filters: Any) -> dict[str, Any]:
    return {"limit": limit, "offset": offset, **{k: v for k, v in filters.items() if v is not None}}


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry. `attempts` counts the first try (1 = never retry);
    the n-th retry waits a random time up to `backoff * 2**(n-1)` seconds, at most
    `max_backoff`, or what `Retry-After` asks, unless that is over `max_retry_after` (then
    the RateLimited error is raised at once)."""

    attempts: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def wait(
        self,
        call: Call[Any],
        attempt: int,
        response: httpx.Response | None = None,
        error: httpx.TransportError | None = None,
    ) -> float | None:
        """Seconds to wait before trying `call` again after try number `attempt` (from 1),
        or None to give up and raise."""
        if attempt >= self.attempts:
            return None
        if error is not None:
            never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout)
            return self.backoff_after(attempt) if never_sent or call.resendable else None
        assert response is not None
        retryable = response.status_code == 429 or (response.status_code == 503 and call.resendable)
        if not retryable:
            return None
        asked = retry_after_seconds(response.headers)
        if asked is None:
            return self.backoff_after(attempt)
        if asked > self.max_retry_after:
            return None
        # A little jitter on top, so clients told the same second do not all return together.
        return asked + random.uniform(0, min(1.0, self.backoff))

    def backoff_after(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def answer_of(call: Call[T], response: httpx.Response) -> T:
    if response.is_error and response.status_code not in call.accept:
        raise error_from_response(response)
    return call.read(response)


def idempotency_key_or_new(key: str | None, automatic: bool) -> str | None:
    """The caller's key, else (with `automatic`) a fresh one for this call: every retry of
    the call sends the same key, so a create that reached the service is not made twice."""
    if key is not None:
        return key
    return uuid.uuid4().hex if automatic else None


# ---- every API call -------------------------------------------------------------------------


class Operations:
    """Every route of the API, once. The results are typed (client/models.py); on
    `AsyncClient` each method returns an awaitable of the same."""

    automatic_idempotency_keys = True

    def _send(self, call: Call[T]) -> T:
        raise NotImplementedError

    def _wait(
        self,
        fetch: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float,
        poll: float,
        what: str,
    ) -> Any:
        raise NotImplementedError

    def _iterate(self, list_page: Callable[..., Any], page_size: int, **filters: Any) -> Any:
        raise NotImplementedError

    def stream_events(
        self, path: str, last_event_id: str | None = None, reconnects: int = 5
    ) -> Any:
        raise NotImplementedError

    def _key(self, idempotency_key: str | None) -> str | None:
        return idempotency_key_or_new(idempotency_key, self.automatic_idempotency_keys)

    # ---- health ----

    def healthz(self) -> Health:
        return self._send(get("/healthz", one(Health)))

    def readyz(self) -> Health:
        """The service's checks (database, broker, store); `status` is not ok when one
        fails (the service answers 503 then, which this returns rather than raises)."""
        return self._send(Call("GET", "/readyz", one(Health), accept=(503,)))

    # ---- datasets ----

    def upload_dataset(
        self,
        data: bytes | Path,
        filename: str = "data.csv",
        name: str | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        if isinstance(data, Path):
            filename, data = data.name, data.read_bytes()
        fields = {"name": name} if name else None
        files = {"file": (filename, data, "application/octet-stream")}
        key = self._key(idempotency_key)
        return self._send(post("/v1/datasets", one(Dataset), key, files=files, data=fields))

    def list_datasets(self, limit: int = 50, offset: int = 0) -> Page[Dataset]:
        return self._send(get("/v1/datasets", page_of(Dataset), params=paging(limit, offset)))

    def iter_datasets(self, page_size: int = 100) -> Iterator[Dataset]:
        return self._iterate(self.list_datasets, page_size)

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._send(get(f"/v1/datasets/{dataset_id}", one(Dataset)))

    def dataset_profile(self, dataset_id: str, target: str | None = None) -> DatasetProfile:
        """Per-column statistics and warnings; with `target`, class balance and feature scores."""
        params = {"target": target} if target else None
        path = f"/v1/datasets/{dataset_id}/profile"
        return self._send(get(path, one(DatasetProfile), params=params))

    def validate_spec(self, dataset_id: str, spec: dict[str, Any]) -> SpecCheck:
        """The layer table and parameter count of `spec` on the dataset; ValidationError
        (422) names the field and the reason."""
        body = {"dataset_id": dataset_id, "spec": spec}
        return self._send(post("/v1/specs/validate", one(SpecCheck), json=body))

    # ---- jobs ----

    def create_job(
        self,
        dataset_id: str,
        spec: dict[str, Any],
        idempotency_key: str | None = None,
        validation_dataset_id: str | None = None,
        test_dataset_id: str | None = None,
    ) -> Job:
        """Queue training on `dataset_id`; a given validation or test dataset replaces that
        split (the training set is then used whole for what is given)."""
        body: dict[str, Any] = {"dataset_id": dataset_id, "spec": spec}
        if validation_dataset_id is not None:
            body["validation_dataset_id"] = validation_dataset_id
        if test_dataset_id is not None:
            body["test_dataset_id"] = test_dataset_id
        return self._send(post("/v1/jobs", one(Job), self._key(idempotency_key), json=body))

    def list_jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> Page[Job]:
        params = paging(limit, offset, status=status)
        return self._send(get("/v1/jobs", page_of(Job), params=params))

    def iter_jobs(self, status: str | None = None, page_size: int = 100) -> Iterator[Job]:
        """Every job (newest first), fetched a page at a time."""
        return self._iterate(self.list_jobs, page_size, status=status)

    def get_job(self, job_id: str) -> Job:
        return self._send(get(f"/v1/jobs/{job_id}", one(Job)))

    def job_metrics(self, job_id: str) -> JobMetrics:
        return self._send(get(f"/v1/jobs/{job_id}/metrics", one(JobMetrics)))

    def compare_jobs(self, job_ids: list[str]) -> JobComparison:
        params = {"ids": ",".join(job_ids)}
        return self._send(get("/v1/jobs/compare", one(JobComparison), params=params))

    def cancel_job(self, job_id: str) -> Job:
        return self._send(post(f"/v1/jobs/{job_id}/cancel", one(Job)))

    def wait_for_job(self, job_id: str, timeout: float = 600.0, poll: float = 0.1) -> Job:
        """The job once it has ended (succeeded, failed or cancelled); TimeoutError after
        `timeout` seconds."""
        return self._wait(
            lambda: self.get_job(job_id), lambda j: j.finished, timeout, poll, f"job {job_id}"
        )

    def stream_job(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's live events until its `end` (see `stream_events`)."""
        return self.stream_events(f"/v1/jobs/{job_id}/events", last_event_id)

    # ---- studies ----

    def create_study(
        self,
        dataset_id: str,
        spec: dict[str, Any],
        search_space: dict[str, Any],
        **options: Any,
    ) -> Study:
        """Start a hyperparameter search; `options`: name, objective, max_trials,
        parallel_trials, max_failed_trials, sampler, pruner, seed, baseline. (The service
        keeps no idempotency key for studies, so this is not retried after a lost answer.)"""
        body = {"dataset_id": dataset_id, "spec": spec, "search_space": search_space, **options}
        return self._send(post("/v1/studies", one(Study), json=body))

    def list_studies(self, limit: int = 50, offset: int = 0) -> Page[Study]:
        return self._send(get("/v1/studies", page_of(Study), params=paging(limit, offset)))

    def iter_studies(self, page_size: int = 100) -> Iterator[Study]:
        return self._iterate(self.list_studies, page_size)

    def get_study(self, study_id: str) -> Study:
        return self._send(get(f"/v1/studies/{study_id}", one(Study)))

    def study_trials(self, study_id: str, limit: int = 50, offset: int = 0) -> Page[Trial]:
        path = f"/v1/studies/{study_id}/trials"
        return self._send(get(path, page_of(Trial), params=paging(limit, offset)))

    def iter_study_trials(self, study_id: str, page_size: int = 100) -> Iterator[Trial]:
        return self._iterate(
            lambda limit, offset: self.study_trials(study_id, limit, offset), page_size
        )

    def cancel_study(self, study_id: str) -> Study:
        return self._send(post(f"/v1/studies/{study_id}/cancel", one(Study)))

    def wait_for_study(self, study_id: str, timeout: float = 3600.0, poll: float = 0.5) -> Study:
        return self._wait(
            lambda: self.get_study(study_id),
            lambda s: s.finished,
            timeout,
            poll,
            f"study {study_id}",
        )

    def stream_study(self, study_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        return self.stream_events(f"/v1/studies/{study_id}/events", last_event_id)

    # ---- models ----

    def list_models(self, limit: int = 50, offset: int = 0) -> Page[ModelName]:
        """A page of registered names, each with its latest version and its aliases."""
        return self._send(get("/v1/models", page_of(ModelName), params=paging(limit, offset)))

    def iter_models(self, page_size: int = 100) -> Iterator[ModelName]:
        return self._iterate(self.list_models, page_size)

    def get_model(self, model: str) -> Model:
        """`model`: a model id (`mdl_...`), `name/versions/3` or `name@production`."""
        return self._send(get(f"/v1/models/{model}", one(Model)))

    def model_versions(self, name: str, limit: int = 50, offset: int = 0) -> Page[ModelVersion]:
        """A page of a name's versions, newest first, with their test metrics."""
        path = f"/v1/models/{name}/versions"
        return self._send(get(path, page_of(ModelVersion), params=paging(limit, offset)))

    def iter_model_versions(self, name: str, page_size: int = 100) -> Iterator[ModelVersion]:
        return self._iterate(
            lambda limit, offset: self.model_versions(name, limit, offset), page_size
        )

    def set_alias(self, name: str, alias: str, version: int) -> Alias:
        """Point `name@alias` at a version; predictions through it follow at once."""
        path = f"/v1/models/{name}/aliases/{alias}"
        return self._send(Call("PUT", path, one(Alias), json={"version": version}, resendable=True))

    def delete_alias(self, name: str, alias: str) -> None:
        path = f"/v1/models/{name}/aliases/{alias}"
        return self._send(Call("DELETE", path, nothing, resendable=True))

    def predict(self, model: str, instances: list[dict[str, Any]]) -> list[Prediction]:
        """`model`: a model id (`mdl_...`), `name/versions/3` or `name@production`."""
        path = f"/v1/models/{model}/predict"
        return self._send(post(path, predictions, json={"instances": instances}))

    def encode(self, model: str, instances: list[dict[str, Any]]) -> Encoding:
        """The latent vectors of an autoencoder model, one per instance."""
        path = f"/v1/models/{model}/encode"
        return self._send(post(path, one(Encoding), json={"instances": instances}))

    def explain_model(
        self,
        model: str,
        instances: list[Any],
        target: Any = None,
        n_steps: int | None = None,
    ) -> ModelExplanation:
        """Integrated-gradients attributions of each instance's prediction, towards its
        predicted class or `target` (a class; a 1-based output or forecast step)."""
        body: dict[str, Any] = {"instances": instances}
        if target is not None:
            body["target"] = target
        if n_steps is not None:
            body["n_steps"] = n_steps
        return self._send(post(f"/v1/models/{model}/explain", one(ModelExplanation), json=body))

    def sample_model(
        self, model: str, n: int = 10, seed: int | None = None, label: Any = None
    ) -> Samples:
        """`n` examples from a GAN (task generation): rows or PNG images; the same `seed`
        makes the same ones; `label` conditions a conditional GAN."""
        body: dict[str, Any] = {"n": n}
        if seed is not None:
            body["seed"] = seed
        if label is not None:
            body["label"] = label
        return self._send(post(f"/v1/models/{model}/sample", one(Samples), json=body))

    def export_model(self, model: str, format: str = "onnx") -> bytes:
        """The network as one file: `onnx`, `torchscript` or `safetensors`."""
        path = f"/v1/models/{model}/export"
        return self._send(get(path, content, params={"format": format}))

    # ---- batch predictions ----

    def create_batch_prediction(
        self,
        model: str,
        dataset_id: str,
        format: str = "parquet",
        id_column: str | None = None,
        idempotency_key: str | None = None,
    ) -> BatchPrediction:
        """Queue predictions of `model` over every row of a table dataset."""
        body: dict[str, Any] = {"dataset_id": dataset_id, "format": format}
        if id_column is not None:
            body["id_column"] = id_column
        path = f"/v1/models/{model}/batch-predictions"
        key = self._key(idempotency_key)
        return self._send(post(path, one(BatchPrediction), key, json=body))

    def list_batch_predictions(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[BatchPrediction]:
        params = paging(limit, offset, status=status)
        return self._send(get("/v1/batch-predictions", page_of(BatchPrediction), params=params))

    def iter_batch_predictions(
        self, status: str | None = None, page_size: int = 100
    ) -> Iterator[BatchPrediction]:
        return self._iterate(self.list_batch_predictions, page_size, status=status)

    def get_batch_prediction(self, batch_id: str) -> BatchPrediction:
        return self._send(get(f"/v1/batch-predictions/{batch_id}", one(BatchPrediction)))

    def cancel_batch_prediction(self, batch_id: str) -> BatchPrediction:
        path = f"/v1/batch-predictions/{batch_id}/cancel"
        return self._send(post(path, one(BatchPrediction)))

    def wait_for_batch_prediction(
        self, batch_id: str, timeout: float = 600.0, poll: float = 0.1
    ) -> BatchPrediction:
        return self._wait(
            lambda: self.get_batch_prediction(batch_id),
            lambda b: b.finished,
            timeout,
            poll,
            f"batch prediction {batch_id}",
        )

    def batch_prediction_result(self, batch_id: str) -> bytes:
        """The result file's bytes (Parquet or CSV, as asked); Conflict (409) until it
        succeeded."""
        return self._send(get(f"/v1/batch-predictions/{batch_id}/result", content))

    def stream_batch_prediction(
        self, batch_id: str, last_event_id: str | None = None
    ) -> Iterator[Event]:
        return self.stream_events(f"/v1/batch-predictions/{batch_id}/events", last_event_id)

    # ---- evaluations ----

    def create_evaluation(
        self, model: str, dataset_id: str, idempotency_key: str | None = None
    ) -> Evaluation:
        """Queue the scoring of `model` on every row of a stored labelled dataset."""
        path = f"/v1/models/{model}/evaluations"
        key = self._key(idempotency_key)
        return self._send(post(path, one(Evaluation), key, json={"dataset_id": dataset_id}))

    def list_model_evaluations(
        self, model: str, dataset_id: str | None = None, limit: int = 50, offset: int = 0
    ) -> Page[Evaluation]:
        """The evaluations of one model version; with `dataset_id`, on one hold-out."""
        params = paging(limit, offset, dataset_id=dataset_id)
        path = f"/v1/models/{model}/evaluations"
        return self._send(get(path, page_of(Evaluation), params=params))

    def list_evaluations(
        self,
        model_id: str | None = None,
        dataset_id: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> Page[Evaluation]:
        params = paging(limit, offset, model_id=model_id, dataset_id=dataset_id, status=status)
        return self._send(get("/v1/evaluations", page_of(Evaluation), params=params))

    def iter_evaluations(
        self,
        model_id: str | None = None,
        dataset_id: str | None = None,
        status: str | None = None,
        page_size: int = 100,
    ) -> Iterator[Evaluation]:
        return self._iterate(
            self.list_evaluations,
            page_size,
            model_id=model_id,
            dataset_id=dataset_id,
            status=status,
        )

    def get_evaluation(self, evaluation_id: str) -> Evaluation:
        return self._send(get(f"/v1/evaluations/{evaluation_id}", one(Evaluation)))

    def cancel_evaluation(self, evaluation_id: str) -> Evaluation:
        return self._send(post(f"/v1/evaluations/{evaluation_id}/cancel", one(Evaluation)))

    def wait_for_evaluation(
        self, evaluation_id: str, timeout: float = 600.0, poll: float = 0.1
    ) -> Evaluation:
        return self._wait(
            lambda: self.get_evaluation(evaluation_id),
            lambda e: e.finished,
            timeout,
            poll,
            f"evaluation {evaluation_id}",
        )

    def stream_evaluation(
        self, evaluation_id: str, last_event_id: str | None = None
    ) -> Iterator[Event]:
        return self.stream_events(f"/v1/evaluations/{evaluation_id}/events", last_event_id)

    # ---- keys of this client's project ----

    def list_keys(self) -> KeyList:
        return self._send(get("/v1/keys", one(KeyList)))

    def create_key(self, name: str | None = None) -> KeyCreated:
        """A new key for this client's project; its secret is in this answer only."""
        return self._send(post("/v1/keys", one(KeyCreated), json={"name": name} if name else {}))

    def revoke_key(self, key_id: str) -> Key:
        return self._send(Call("DELETE", f"/v1/keys/{key_id}", one(Key), resendable=True))

    # ---- the admin's calls (a client constructed with the admin key) ----

    def create_project(self, name: str) -> ProjectCreated:
        """A new project and its first key (`answer.key.secret`, shown this once)."""
        return self._send(post("/v1/projects", one(ProjectCreated), json={"name": name}))

    def list_projects(self, limit: int = 50, offset: int = 0) -> Page[Project]:
        return self._send(get("/v1/projects", page_of(Project), params=paging(limit, offset)))

    def iter_projects(self, page_size: int = 100) -> Iterator[Project]:
        return self._iterate(self.list_projects, page_size)

    def list_workers(self) -> WorkerList:
        """The live workers (admin key): the queues each listens on and its CUDA devices."""
        return self._send(get("/v1/workers", one(WorkerList)))

    def create_project_key(self, project_id: str, name: str | None = None) -> KeyCreated:
        """A further key for a project; its secret is in this answer only."""
        body = {"name": name} if name else {}
        return self._send(post(f"/v1/projects/{project_id}/keys", one(KeyCreated), json=body))


def predictions(response: httpx.Response) -> list[Prediction]:
    return [Prediction.model_validate(p) for p in response.json()["predictions"]]


def next_offset(page: Page[Any], offset: int) -> int | None:
    """Where the next page starts, or None after the last one."""
    offset += len(page.items)
    return offset if page.items and offset < page.total else None


def stream_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    # No read timeout: a quiet stream still gets a ping every few seconds.
    return httpx.Timeout(timeout.connect or 10.0, read=None)


def reconnect_wait(failures: int) -> float:
    return min(0.2 * 2**failures, 5.0)


# ---- the sync client ------------------------------------------------------------------------


class Client(Operations):
    """`Client("http://127.0.0.1:8000", "ty_...")`: upload, train, wait, predict.

    Constructed with the service's admin key instead, it creates projects and their keys
    (`create_project`, `create_project_key`, `list_projects`) and nothing else.

    `retry`: see `Retry` (`Retry(attempts=1)` never retries). `idempotency_keys`: give every
    create that the service de-duplicates (datasets, jobs, batch predictions) a fresh key
    unless the caller passes one, so it can be retried safely."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        retry: Retry | None = None,
        idempotency_keys: bool = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self.retry = retry or Retry()
        self.automatic_idempotency_keys = idempotency_keys

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self.http.request(call.method, call.path, **call.request_options())
            except httpx.TransportError as exc:
                wait = self.retry.wait(call, attempt, error=exc)
                if wait is None:
                    raise
            else:
                wait = self.retry.wait(call, attempt, response) if response.is_error else None
                if wait is None:
                    return answer_of(call, response)
            time.sleep(wait)

    def _wait(
        self,
        fetch: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float,
        poll: float,
        what: str,
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            resource = fetch()
            if done(resource):
                return resource
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} still {resource.status} after {timeout} s")
            time.sleep(poll)

    def _iterate(
        self, list_page: Callable[..., Page[T]], page_size: int, **filters: Any
    ) -> Iterator[T]:
        offset: int | None = 0
        while offset is not None:
            page = list_page(limit=page_size, offset=offset, **filters)
            yield from page.items
            offset = next_offset(page, offset)

    def stream_events(
        self, path: str, last_event_id: str | None = None, reconnects: int = 5
    ) -> Iterator[Event]:
        """Server-Sent Events from `path`, parsed, until `end` (the last one yielded). A dropped
        connection is opened again with `Last-Event-ID`, so no event is lost or repeated; up
        to `reconnects` times in a row without an event between."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            timeout = stream_timeout(self.http.timeout)
            try:
                with self.http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.is_error:
                        response.read()
                        raise error_from_response(response)
                    parser = EventParser()
                    for line in response.iter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                        if event.type == "end":
                            return
            except httpx.TransportError:
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(reconnect_wait(failures))
                continue
            # The server closed the stream before `end`: open it again from the last id.
            failures += 1
            if failures > reconnects:
                raise httpx.RemoteProtocolError(f"{path}: the stream ended before its end event")
            time.sleep(reconnect_wait(failures))


# ---- the async client -----------------------------------------------------------------------


class AsyncClient(Operations):
    """The same methods as `Client`, each awaited (`await c.get_job(id)`); `wait_for_*`
    awaited too; `iter_*` and `stream_*` are async iterators (`async for job in
    c.iter_jobs()`). `async with AsyncClient(url, key) as c: ...`"""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        timeout: float = 60.0,
        retry: Retry | None = None,
        idempotency_keys: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self.retry = retry or Retry()
        self.automatic_idempotency_keys = idempotency_keys

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self.http.request(call.method, call.path, **call.request_options())
            except httpx.TransportError as exc:
                wait = self.retry.wait(call, attempt, error=exc)
                if wait is None:
                    raise
            else:
                wait = self.retry.wait(call, attempt, response) if response.is_error else None
                if wait is None:
                    return answer_of(call, response)
            await asyncio.sleep(wait)

    async def _wait(
        self,
        fetch: Callable[[], Any],
        done: Callable[[Any], bool],
        timeout: float,
        poll: float,
        what: str,
    ) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            resource = await fetch()
            if done(resource):
                return resource
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} still {resource.status} after {timeout} s")
            await asyncio.sleep(poll)

    async def _iterate(
        self, list_page: Callable[..., Any], page_size: int, **filters: Any
    ) -> AsyncIterator[Any]:
        offset: int | None = 0
        while offset is not None:
            page = await list_page(limit=page_size, offset=offset, **filters)
            for item in page.items:
                yield item
            offset = next_offset(page, offset)

    async def stream_events(
        self, path: str, last_event_id: str | None = None, reconnects: int = 5
    ) -> AsyncIterator[Event]:
        """As `Client.stream_events`: reconnects with `Last-Event-ID` until `end`."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            timeout = stream_timeout(self.http.timeout)
            try:
                async with self.http.stream(
                    "GET", path, headers=headers, timeout=timeout
                ) as response:
                    if response.is_error:
                        await response.aread()
                        raise error_from_response(response)
                    parser = EventParser()
                    async for line in response.aiter_lines():
                        event = parser.feed(line)
                        if event is None:
                            continue
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                        if event.type == "end":
                            return
            except httpx.TransportError:
                failures += 1
                if failures > reconnects:
                    raise
                await asyncio.sleep(reconnect_wait(failures))
                continue
            failures += 1
            if failures > reconnects:
                raise httpx.RemoteProtocolError(f"{path}: the stream ended before its end event")
            await asyncio.sleep(reconnect_wait(failures))
