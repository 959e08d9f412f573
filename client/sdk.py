from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

FINISHED = ("succeeded", "failed", "cancelled")


class ApiError(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        error = body.get("error", {}) if isinstance(body, dict) else {}
        super().__init__(f"{status} {error.get('code')}: {error.get('message')}")
        self.status = status
        self.code = error.get("code")
        self.details = error.get("details")


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of `GET .../events`: `type` is progress, warning, status, log,
    trial or end; `id` what to resume after."""

    id: str | None
    type: str
    data: Any


def parse_events(lines: Iterable[str]) -> Iterator[Event]:
    """Events from the lines of a `text/event-stream` body (comments, such as pings, are
    skipped)."""
    event_id, event_type, data = None, "message", []
    for line in lines:
        if line == "":
            if data:
                yield Event(event_id, event_type, json.loads("\n".join(data)))
            event_id, event_type, data = None, "message", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "id":
            event_id = value
        elif field == "event":
            event_type = value
        elif field == "data":
            data.append(value)


class Client:
    """`Client("http://127.0.0.1:8000", "ty_...")`: upload, train, wait, predict.

    Constructed with the service's admin key instead, it creates projects and their keys
    (`create_project`, `create_project_key`, `list_projects`) and nothing else."""

    def __init__(self, base_url: str, api_key: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _json(self, response: httpx.Response) -> Any:
        body = response.json()
        if response.is_error:
            raise ApiError(response.status_code, body)
        return body

    def upload_dataset(
        self, data: bytes | Path, filename: str = "data.csv", name: str | None = None
    ) -> dict:
        if isinstance(data, Path):
            filename, data = data.name, data.read_bytes()
        fields = {"name": name} if name else None
        files = {"file": (filename, data, "application/octet-stream")}
        return self._json(self.http.post("/v1/datasets", files=files, data=fields))

    def dataset_profile(self, dataset_id: str, target: str | None = None) -> dict:
        """Per-column statistics and warnings; with `target`, class balance and feature scores."""
        params = {"target": target} if target else None
        return self._json(self.http.get(f"/v1/datasets/{dataset_id}/profile", params=params))

    def create_job(self, dataset_id: str, spec: dict[str, Any]) -> dict:
        return self._json(self.http.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec}))

    def get_job(self, job_id: str) -> dict:
        return self._json(self.http.get(f"/v1/jobs/{job_id}"))

    def job_metrics(self, job_id: str) -> dict:
        return self._json(self.http.get(f"/v1/jobs/{job_id}/metrics"))

    def cancel_job(self, job_id: str) -> dict:
        return self._json(self.http.post(f"/v1/jobs/{job_id}/cancel"))

    def wait_for_job(self, job_id: str, timeout: float = 600.0, poll: float = 0.1) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            job = self.get_job(job_id)
            if job["status"] in FINISHED:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(poll)

    def create_study(
        self,
        dataset_id: str,
        spec: dict[str, Any],
        search_space: dict[str, Any],
        **options: Any,
    ) -> dict:
        """Start a hyperparameter search; `options`: name, objective, max_trials,
        parallel_trials, max_failed_trials, sampler, pruner, seed."""
        body = {"dataset_id": dataset_id, "spec": spec, "search_space": search_space, **options}
        return self._json(self.http.post("/v1/studies", json=body))

    def get_study(self, study_id: str) -> dict:
        return self._json(self.http.get(f"/v1/studies/{study_id}"))

    def study_trials(self, study_id: str, limit: int = 50, offset: int = 0) -> dict:
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get(f"/v1/studies/{study_id}/trials", params=params))

    def cancel_study(self, study_id: str) -> dict:
        return self._json(self.http.post(f"/v1/studies/{study_id}/cancel"))

    def wait_for_study(self, study_id: str, timeout: float = 3600.0, poll: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            study = self.get_study(study_id)
            if study["status"] != "running":
                return study
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study_id} still running after {timeout} s")
            time.sleep(poll)

    def stream_job(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's live events until its `end` (see `stream_events`)."""
        return self.stream_events(f"/v1/jobs/{job_id}/events", last_event_id)

    def stream_study(self, study_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        return self.stream_events(f"/v1/studies/{study_id}/events", last_event_id)

    def stream_batch_prediction(
        self, batch_id: str, last_event_id: str | None = None
    ) -> Iterator[Event]:
        return self.stream_events(f"/v1/batch-predictions/{batch_id}/events", last_event_id)

    def stream_events(
        self, path: str, last_event_id: str | None = None, reconnects: int = 5
    ) -> Iterator[Event]:
        """Server-Sent Events from `path`, parsed, until `end` (the last one yielded). A dropped
        connection is opened again with `Last-Event-ID`, so no event is lost or repeated; up
        to `reconnects` times in a row without an event between."""
        failures = 0
        while True:
            headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
            try:
                # No read timeout: a quiet stream still gets a ping every few seconds.
                timeout = httpx.Timeout(self.http.timeout.connect or 10.0, read=None)
                with self.http.stream("GET", path, headers=headers, timeout=timeout) as response:
                    if response.is_error:
                        response.read()
                        self._json(response)
                    for event in parse_events(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last_event_id = event.id
                        yield event
                        if event.type == "end":
                            return
            except (httpx.TransportError, httpx.RemoteProtocolError):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(0.2 * 2**failures, 5.0))

    def predict(self, model: str, instances: list[dict[str, Any]]) -> list[dict]:
        """`model`: a model id (`mdl_...`), `name/versions/3` or `name@production`."""
        response = self.http.post(f"/v1/models/{model}/predict", json={"instances": instances})
        return self._json(response)["predictions"]

    def create_batch_prediction(
        self,
        model: str,
        dataset_id: str,
        format: str = "parquet",
        id_column: str | None = None,
    ) -> dict:
        """Queue predictions of `model` over every row of a table dataset."""
        body: dict[str, Any] = {"dataset_id": dataset_id, "format": format}
        if id_column is not None:
            body["id_column"] = id_column
        return self._json(self.http.post(f"/v1/models/{model}/batch-predictions", json=body))

    def get_batch_prediction(self, batch_id: str) -> dict:
        return self._json(self.http.get(f"/v1/batch-predictions/{batch_id}"))

    def list_batch_predictions(
        self, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> dict:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._json(self.http.get("/v1/batch-predictions", params=params))

    def cancel_batch_prediction(self, batch_id: str) -> dict:
        return self._json(self.http.post(f"/v1/batch-predictions/{batch_id}/cancel"))

    def wait_for_batch_prediction(
        self, batch_id: str, timeout: float = 600.0, poll: float = 0.1
    ) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            batch = self.get_batch_prediction(batch_id)
            if batch["status"] in FINISHED:
                return batch
            if time.monotonic() > deadline:
                raise TimeoutError(f"batch prediction {batch_id} still {batch['status']}")
            time.sleep(poll)

    def batch_prediction_result(self, batch_id: str) -> bytes:
        """The result file's bytes (Parquet or CSV, as asked); ApiError 409 until it succeeded."""
        response = self.http.get(f"/v1/batch-predictions/{batch_id}/result")
        if response.is_error:
            self._json(response)
        return response.content

    def list_models(self, limit: int = 50, offset: int = 0) -> dict:
        """A page of registered names, each with its latest version and its aliases."""
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get("/v1/models", params=params))

    def get_model(self, model: str) -> dict:
        return self._json(self.http.get(f"/v1/models/{model}"))

    def model_versions(self, name: str, limit: int = 50, offset: int = 0) -> dict:
        """A page of a name's versions, newest first, with their test metrics."""
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get(f"/v1/models/{name}/versions", params=params))

    def set_alias(self, name: str, alias: str, version: int) -> dict:
        """Point `name@alias` at a version; predictions through it follow at once."""
        response = self.http.put(f"/v1/models/{name}/aliases/{alias}", json={"version": version})
        return self._json(response)

    def delete_alias(self, name: str, alias: str) -> None:
        response = self.http.delete(f"/v1/models/{name}/aliases/{alias}")
        if response.is_error:
            self._json(response)

    def list_datasets(self, limit: int = 50, offset: int = 0) -> dict:
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get("/v1/datasets", params=params))

    def get_dataset(self, dataset_id: str) -> dict:
        return self._json(self.http.get(f"/v1/datasets/{dataset_id}"))

    def list_jobs(self, status: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self._json(self.http.get("/v1/jobs", params=params))

    def validate_spec(self, dataset_id: str, spec: dict[str, Any]) -> dict:
        """The layer table and parameter count of `spec` on the dataset; ApiError 422 names
        the field and the reason."""
        body = {"dataset_id": dataset_id, "spec": spec}
        return self._json(self.http.post("/v1/specs/validate", json=body))

    def list_studies(self, limit: int = 50, offset: int = 0) -> dict:
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get("/v1/studies", params=params))

    def export_model(self, model: str, format: str = "onnx") -> bytes:
        """The network as one file: `onnx`, `torchscript` or `safetensors`."""
        response = self.http.get(f"/v1/models/{model}/export", params={"format": format})
        if response.is_error:
            self._json(response)
        return response.content

    def list_keys(self) -> dict:
        return self._json(self.http.get("/v1/keys"))

    def create_key(self, name: str | None = None) -> dict:
        """A new key for this client's project; its secret is in this answer only."""
        return self._json(self.http.post("/v1/keys", json={"name": name} if name else {}))

    def revoke_key(self, key_id: str) -> dict:
        return self._json(self.http.delete(f"/v1/keys/{key_id}"))

    # ---- the admin's calls (a client constructed with the admin key) ----

    def create_project(self, name: str) -> dict:
        """A new project and its first key (`answer["key"]["secret"]`, shown this once)."""
        return self._json(self.http.post("/v1/projects", json={"name": name}))

    def list_projects(self, limit: int = 50, offset: int = 0) -> dict:
        params = {"limit": limit, "offset": offset}
        return self._json(self.http.get("/v1/projects", params=params))

    def create_project_key(self, project_id: str, name: str | None = None) -> dict:
        """A further key for a project; its secret is in this answer only."""
        body = {"name": name} if name else {}
        return self._json(self.http.post(f"/v1/projects/{project_id}/keys", json=body))
