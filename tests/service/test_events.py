"""Live events (`GET .../events`) on sqlite with the file bus and on PostgreSQL with Redis
streams: what a worker published replays in order, a resume from the middle gets exactly the
rest, a finished row's stream is its status and `end`, other projects get 404, and watchers
live on a real HTTP server cost the database no query per event."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest
import uvicorn
from sqlalchemy import event

from client import Event, parse_events
from service.batch_predictions.prediction_run import run_batch_prediction
from service.core.events import PROGRESS, job_topic
from service.core.store import Store
from service.jobs.repository import jobs
from service.jobs.tables import Job
from service.jobs.training_run import run_training_job
from service.studies.trial_observer import observe_trial
from tests.conftest import Api, Backend
from tests.e2e.fleet import free_port
from tests.service.conftest import worker_resources
from tests.service.leases import claim_then_vanish, reconcile

EPOCHS = 6


def events_of(api: Api, path: str, last_event_id: str | None = None) -> list[Event]:
    """A stream read to its end (the stream closes after `end`)."""
    headers = {**api.headers, **({"Last-Event-ID": last_event_id} if last_event_id else {})}
    with api.client.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_events(response.iter_lines()))


def start_id(backend: Backend) -> str:
    return backend.app.state.events.start_id


def test_a_trained_job_replays_its_epochs_in_order_then_ends(
    backend: Backend, api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": EPOCHS})
    assert run_job(job["id"]) == "succeeded"

    events = events_of(api, f"/v1/jobs/{job['id']}/events", start_id(backend))

    types = [e.type for e in events]
    assert types[0] == "status" and events[0].data["status"] == "running"
    assert "log" in types
    progress = [e.data for e in events if e.type == PROGRESS]
    assert [p["epoch"] for p in progress] == list(range(1, EPOCHS + 1))
    assert all(p["epochs"] == EPOCHS and "val_loss" in p["metrics"] for p in progress)
    assert all(p["samples_per_second"] > 0 and p["eta_seconds"] >= 0 for p in progress)
    assert types[-2:] == ["status", "end"]
    assert events[-1].data == {"status": "succeeded"}
    ids = [e.id for e in events]
    assert None not in ids and len(set(ids)) == len(ids)


def test_a_resume_from_the_middle_gets_exactly_the_rest(
    backend: Backend, api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": EPOCHS})
    assert run_job(job["id"]) == "succeeded"
    path = f"/v1/jobs/{job['id']}/events"
    everything = events_of(api, path, start_id(backend))

    middle = [e.type for e in everything].index(PROGRESS) + 2
    rest = events_of(api, path, everything[middle].id)

    assert rest == everything[middle + 1 :]


def test_a_finished_job_gives_its_status_then_end(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 2})
    assert run_job(job["id"]) == "succeeded"

    events = events_of(api, f"/v1/jobs/{job['id']}/events")

    assert [e.type for e in events] == ["status", "end"]
    assert events[0].data["status"] == "succeeded"
    assert events[0].data["progress"]["epoch"] == 2
    assert events[1].data == {"status": "succeeded"}


def test_a_job_the_reconciler_gives_up_on_ends_its_stream(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    job = submit(dataset_id)
    claim_then_vanish(backend, jobs, Job, job["id"], attempts=backend.settings.max_attempts)
    assert job["id"] in reconcile(backend).failed

    # What was published, not the snapshot: the reconciler's own status, then end.
    events = events_of(api, f"/v1/jobs/{job['id']}/events", start_id(backend))

    assert [e.type for e in events][-2:] == ["status", "end"]
    assert events[-2].data["status"] == "failed" and "gave up" in events[-2].data["error"]
    assert events[-1].data == {"status": "failed"}


def test_a_queued_job_cancelled_by_the_api_ends_its_stream(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    job = submit(dataset_id)
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202

    events = events_of(api, f"/v1/jobs/{job['id']}/events", start_id(backend))

    assert [(e.type, e.data["status"]) for e in events] == [
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]


def test_another_projects_job_is_404(api: Api, other_api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    response = other_api.get(f"/v1/jobs/{job['id']}/events")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert api.get("/v1/jobs/job_nope/events").status_code == 404


def test_a_last_event_id_the_stream_never_gave_is_a_422(api: Api, dataset_id: str, submit) -> None:
    job = submit(dataset_id)
    headers = {**api.headers, "Last-Event-ID": "not-an-id"}
    response = api.client.get(f"/v1/jobs/{job['id']}/events", headers=headers)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "Last-Event-ID"


def test_a_batch_prediction_streams_its_rows(
    backend: Backend, api: Api, dataset_id: str, trained_model_id: str
) -> None:
    response = api.post(
        f"/v1/models/{trained_model_id}/batch-predictions", json={"dataset_id": dataset_id}
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    assert run_batch_prediction(worker_resources(backend), batch_id, chunk_rows=50) == "succeeded"

    events = events_of(api, f"/v1/batch-predictions/{batch_id}/events", start_id(backend))

    progress = [e.data for e in events if e.type == PROGRESS]
    total = progress[0]["rows_total"]
    assert total > 100
    assert [p["rows_done"] for p in progress] == [0, *range(50, total, 50), total]
    assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}


def test_a_study_streams_its_trials_then_ends(backend: Backend, api: Api, dataset_id: str) -> None:
    body = {
        "dataset_id": dataset_id,
        "spec": {"task": "classification", "target": "label", "training": {"epochs": 2}},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1}},
        "max_trials": 2,
        "parallel_trials": 1,
    }
    response = api.post("/v1/studies", json=body)
    assert response.status_code == 202, response.text
    study_id = response.json()["id"]
    resources = worker_resources(backend)
    for number in range(2):
        trial = api.get(f"/v1/studies/{study_id}/trials").json()["items"][number]
        assert run_training_job(resources, trial["job_id"], observe_trial) == "succeeded"

    events = events_of(api, f"/v1/studies/{study_id}/events", start_id(backend))

    trials = [(e.data["number"], e.data["state"]) for e in events if e.type == "trial"]
    assert trials == [(0, "queued"), (0, "succeeded"), (1, "queued"), (1, "succeeded")]
    assert all("training.learning_rate" in e.data["params"] for e in events if e.type == "trial")
    assert events[-1].type == "end" and events[-1].data == {"status": "succeeded"}


@contextmanager
def served(backend: Backend) -> Iterator[str]:
    """The backend's own app (its engine, its bus) on a real HTTP server in a thread."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            backend.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("watchers", [20])
def test_many_watchers_of_one_job_cost_no_query_per_event(
    backend: Backend, api: Api, dataset_id: str, submit, watchers: int
) -> None:
    job = submit(dataset_id)
    queries: list[str] = []
    engine = backend.app.state.db_engine
    count = lambda *args: queries.append(args[2])  # noqa: E731
    connected = threading.Barrier(watchers + 1, timeout=60)
    seen: list[list[Event]] = [[] for _ in range(watchers)]

    def watch(n: int, base_url: str) -> None:
        with httpx.stream(
            "GET", f"{base_url}/v1/jobs/{job['id']}/events", headers=api.headers, timeout=60
        ) as response:
            for i, item in enumerate(parse_events(response.iter_lines())):
                seen[n].append(item)
                if i == 0:
                    connected.wait()

    with served(backend) as base_url:
        threads = [threading.Thread(target=watch, args=(n, base_url)) for n in range(watchers)]
        for thread in threads:
            thread.start()
        connected.wait()
        event.listen(engine, "before_cursor_execute", count)
        try:
            bus, topic = backend.app.state.events, job_topic(job["id"])
            for epoch in range(1, 11):
                bus.publish(topic, PROGRESS, {"epoch": epoch, "epochs": 10})
            bus.end(topic, "succeeded")
            for thread in threads:
                thread.join(60)
        finally:
            event.remove(engine, "before_cursor_execute", count)

    assert queries == []
    for got in seen:
        assert [e.data["epoch"] for e in got if e.type == PROGRESS] == list(range(1, 11))
        assert got[-1].type == "end"


def _study(api: Api, dataset_id: str, **options) -> dict:
    body = {
        "dataset_id": dataset_id,
        "spec": {"task": "classification", "target": "label", "training": {"epochs": 2}},
        "search_space": {"training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-1}},
        **options,
    }
    response = api.post("/v1/studies", json=body)
    assert response.status_code == 202, response.text
    return response.json()


def _trial_ends(backend: Backend, api: Api, study_id: str) -> dict[int, list[tuple[str, str]]]:
    """Per trial number, the (type, status) of the status and end events its job's topic
    logged (a watcher that came back after it ended with nothing logged gets `end` alone)."""
    trials = api.get(f"/v1/studies/{study_id}/trials").json()["items"]
    return {
        trial["number"]: [
            (e.type, e.data["status"])
            for e in events_of(api, f"/v1/jobs/{trial['job_id']}/events", start_id(backend))
            if e.type in ("status", "end")
        ]
        for trial in trials
    }


def test_a_cancelled_studys_queued_trials_end_their_own_streams(
    backend: Backend, api: Api, dataset_id: str
) -> None:
    study = _study(api, dataset_id, max_trials=4, parallel_trials=2)
    assert api.post(f"/v1/studies/{study['id']}/cancel").status_code == 202

    ends = _trial_ends(backend, api, study["id"])

    assert ends == {n: [("status", "cancelled"), ("end", "cancelled")] for n in (0, 1)}


def test_a_study_over_its_failed_trials_ends_the_queued_trials_streams(
    backend: Backend, api: Api, dataset_id: str, tmp_path
) -> None:
    study = _study(api, dataset_id, max_trials=4, parallel_trials=2, max_failed_trials=0)
    # A worker whose store lacks the dataset: the trial fails, and the study with it.
    resources = replace(worker_resources(backend), store=Store(tmp_path.as_uri()))
    first = api.get(f"/v1/studies/{study['id']}/trials").json()["items"][0]
    assert run_training_job(resources, first["job_id"], observe_trial) == "failed"

    after = api.get(f"/v1/studies/{study['id']}").json()
    assert after["status"] == "failed" and "max_failed_trials of 0" in after["error"]
    assert after["counts"]["cancelled"] == 1
    assert _trial_ends(backend, api, study["id"])[1] == [
        ("status", "cancelled"),
        ("end", "cancelled"),
    ]
