"""A job with `training.resources.processes: 2`, run by the worker's code under
torch.distributed.run: it succeeds with every epoch recorded once, a cancel stops every rank, a
killed rank fails the attempt and the job resumes from its checkpoint, and specs that cannot
run on several ranks are a 422 naming the field. On two nodes: a lost join task is sent again,
and a joined node that is lost fails the attempt at once."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.core.database import transaction
from service.core.leased_run import WorkerResources
from service.core.queue import JOIN_JOB_TASK
from service.jobs.distributed_run import child_pids
from service.jobs.node_run import run_job_slot
from service.jobs.repository import slots
from service.jobs.training_run import run_training_job
from tests.conftest import Api, Backend, assert_invalid
from tests.e2e.fleet import rank_pids
from tests.service.conftest import labels_of_both_classes, worker_resources

TWO_RANKS = {"resources": {"processes": 2}, "device": "cpu", "early_stopping": None}


def _launcher_pid() -> int | None:
    """The launcher this test process started (through the worker code in a thread)."""
    for pid in child_pids(os.getpid()):
        try:
            arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"torch.distributed.run" in arguments:
            return pid
    return None


def _wait_for(predicate: Callable[[], object], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _in_thread(resources, job_id: str) -> tuple[threading.Thread, dict]:
    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.setdefault("result", run_training_job(resources, job_id))
    )
    thread.start()
    return thread, outcome


def _epochs(api: Api, job_id: str) -> list[int]:
    return [entry["epoch"] for entry in api.get(f"/v1/jobs/{job_id}/metrics").json()["epochs"]]


def test_a_two_process_job_trains_records_every_epoch_once_and_predicts(
    api: Api, dataset_id: str, submit, run_job
) -> None:
    job = submit(dataset_id, training={"epochs": 8, "learning_rate": 0.01, **TWO_RANKS})
    assert run_job(job["id"]) == "succeeded"
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 1
    assert finished["progress"]["epoch"] == 8
    assert _epochs(api, job["id"]) == list(range(1, 9))
    assert finished["report"]["evaluation"]["metrics"]["accuracy"] > 0.8
    assert finished["report"]["compute"]["ranks"] == 2
    assert labels_of_both_classes(api, finished["model_id"]) == ["yes", "no"]
    assert rank_pids() == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cancelling_a_two_process_job_stops_every_rank(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    job = submit(dataset_id, training={"epochs": 1000, "batch_size": 1, **TWO_RANKS})
    thread, outcome = _in_thread(worker_resources(backend), job["id"])
    _wait_for(lambda: len(rank_pids()) == 2 and _epochs(api, job["id"]))
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 202
    thread.join(timeout=30)
    assert outcome["result"] == "cancelled"
    assert api.get(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
    assert rank_pids() == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_killed_rank_fails_the_attempt_and_the_job_resumes_from_its_checkpoint(
    backend: Backend, api: Api, dataset_id: str, submit, run_job
) -> None:
    resources = worker_resources(backend)
    resources.settings = backend.settings.model_copy(update={"checkpoint_interval_seconds": 0})
    job = submit(dataset_id, training={"epochs": 30, "batch_size": 2, **TWO_RANKS})
    thread, outcome = _in_thread(resources, job["id"])
    _wait_for(lambda: len(_epochs(api, job["id"])) >= 2)
    launcher = _launcher_pid()
    assert launcher is not None
    ranks = child_pids(launcher)
    assert len(ranks) == 2
    os.kill(ranks[1], signal.SIGKILL)
    thread.join(timeout=60)
    assert outcome["result"] == "released"
    handed_back = api.get(f"/v1/jobs/{job['id']}").json()
    assert (handed_back["status"], handed_back["attempts"]) == ("queued", 1)
    trained_before = _epochs(api, job["id"])
    assert 2 <= len(trained_before) < 30
    assert rank_pids() == []

    assert run_job(job["id"]) == "succeeded"
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 2
    # Resumed after its checkpoint: every epoch once, none trained twice into the history.
    assert _epochs(api, job["id"]) == list(range(1, 31))
    assert finished["model_id"] is not None


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_killed_rank_on_the_last_attempt_fails_the_job_saying_so(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    resources = worker_resources(backend)
    resources.settings = backend.settings.model_copy(update={"max_attempts": 1})
    job = submit(dataset_id, training={"epochs": 1000, "batch_size": 1, **TWO_RANKS})
    thread, outcome = _in_thread(resources, job["id"])
    _wait_for(lambda: _epochs(api, job["id"]))
    launcher = _launcher_pid()
    assert launcher is not None
    os.kill(child_pids(launcher)[0], signal.SIGKILL)
    thread.join(timeout=60)
    assert outcome["result"] == "failed"
    failed = api.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "rank_failed"
    message = failed["error"]["message"]
    assert "gave up after 1 attempts" in message
    # The first line says which rank died and how.
    assert "exitcode -9" in message.splitlines()[0] and "(SIGKILL)" in message.splitlines()[0]
    assert rank_pids() == []


@pytest.mark.parametrize(
    ("training", "field"),
    [
        ({"device": "cpu", "resources": {"gpus": 1}}, "spec.training.resources.gpus"),
        (
            {"device": "cuda", "resources": {"gpus": 2, "processes": 2}},
            "spec.training.resources.processes",
        ),
        ({"resources": {"processes": 0}}, "spec.training.resources.processes"),
        ({"resources": {"threads": 2}}, "spec.training.resources.threads"),
    ],
)
def test_resources_that_cannot_run_are_a_422_naming_the_field(
    api: Api, dataset_id: str, training: dict, field: str
) -> None:
    spec = {"task": "classification", "target": "label", "training": training}
    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
    assert_invalid(response, field)


def test_cross_validation_on_two_processes_is_a_422_naming_the_folds(
    api: Api, dataset_id: str
) -> None:
    spec = {
        "task": "classification",
        "target": "label",
        "training": {"resources": {"processes": 2}},
        "data": {"split": {"folds": 3}},
    }
    response = api.post("/v1/jobs", json={"dataset_id": dataset_id, "spec": spec})
    assert_invalid(response, "spec.data.split.folds")


class RecordingQueue:
    """The broker as the first node sees it: the join tasks it sends, run here by hand."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    def enqueue(self, task: str, row_id: str, queue: str) -> None:
        self.sent.append((task, row_id, queue))

    def joins(self) -> list[str]:
        return [row_id for task, row_id, _ in self.sent if task == JOIN_JOB_TASK]


def _node(backend: Backend, name: str, queue: RecordingQueue, **settings) -> WorkerResources:
    resources = worker_resources(backend)
    resources.worker_id = name
    resources.queue = queue  # type: ignore[assignment]
    resources.settings = backend.settings.model_copy(update=settings)
    return resources


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_nodes_on_the_loopback_train_one_job(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    queue = RecordingQueue()
    first = _node(backend, "node-a", queue, worker_host="127.0.0.1")
    job = submit(
        dataset_id,
        training={
            "epochs": 6,
            "learning_rate": 0.01,
            **TWO_RANKS,
            "resources": {"processes": 1, "nodes": 2},
        },
    )
    thread, outcome = _in_thread(first, job["id"])
    _wait_for(queue.joins)
    (slot_id,) = queue.joins()
    joined = run_job_slot(_node(backend, "node-b", RecordingQueue()), slot_id)
    thread.join(timeout=60)
    assert (outcome["result"], joined) == ("succeeded", "succeeded")
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 1
    assert _epochs(api, job["id"]) == list(range(1, 7))
    assert finished["report"]["evaluation"]["metrics"]["accuracy"] > 0.8
    # A second delivery of the join task finds the slot taken.
    assert run_job_slot(_node(backend, "node-c", RecordingQueue()), slot_id) == "skipped"
    assert rank_pids() == []


def test_a_node_that_never_joins_fails_the_attempt_saying_the_nodes_did_not_meet(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    queue = RecordingQueue()
    first = _node(backend, "node-a", queue, rendezvous_timeout_seconds=5)
    resources = {"processes": 1, "nodes": 2}
    job = submit(dataset_id, training={"epochs": 3, **TWO_RANKS, "resources": resources})
    first.settings = first.settings.model_copy(update={"max_attempts": 1})
    assert run_training_job(first, job["id"]) == "failed"
    failed = api.get(f"/v1/jobs/{job['id']}").json()
    assert failed["error"]["code"] == "rank_failed"
    assert "did not all meet" in failed["error"]["message"].splitlines()[0]
    # Asked for again while the rendezvous waited (every 1.25 s), always the one slot; the
    # slot of the attempt that failed is not joined later.
    (slot_id,) = set(queue.joins())
    assert len(queue.joins()) >= 2
    assert run_job_slot(_node(backend, "node-b", RecordingQueue()), slot_id) == "skipped"
    assert rank_pids() == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_join_task_no_worker_took_is_sent_again_and_the_job_trains(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    queue = RecordingQueue()
    # Asked again every quarter of the rendezvous timeout: 5 s here.
    first = _node(backend, "node-a", queue, worker_host="127.0.0.1", rendezvous_timeout_seconds=20)
    resources = {"processes": 1, "nodes": 2}
    job = submit(
        dataset_id,
        training={"epochs": 4, "learning_rate": 0.01, **TWO_RANKS, "resources": resources},
    )
    thread, outcome = _in_thread(first, job["id"])

    # The broker lost the first join task: nobody runs it, and the first node sends it again.
    _wait_for(lambda: len(queue.joins()) == 2, timeout=30)
    lost, again = queue.joins()
    assert lost == again
    joined = run_job_slot(_node(backend, "node-b", RecordingQueue()), again)
    thread.join(timeout=60)

    assert (outcome["result"], joined) == ("succeeded", "succeeded")
    finished = api.get(f"/v1/jobs/{job['id']}").json()
    assert finished["attempts"] == 1
    assert _epochs(api, job["id"]) == list(range(1, 5))
    assert rank_pids() == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_joined_node_that_stops_renewing_its_slot_fails_the_attempt_at_once(
    backend: Backend, api: Api, dataset_id: str, submit
) -> None:
    queue = RecordingQueue()
    # The rendezvous would wait 5 minutes for the lost node; its slot's lease lapses in 3 s.
    first = _node(
        backend,
        "node-a",
        queue,
        worker_host="127.0.0.1",
        rendezvous_timeout_seconds=300,
        max_attempts=1,
    )
    resources = {"processes": 1, "nodes": 2}
    job = submit(dataset_id, training={"epochs": 3, **TWO_RANKS, "resources": resources})
    thread, outcome = _in_thread(first, job["id"])
    _wait_for(queue.joins)
    (slot_id,) = queue.joins()

    # A worker claims the slot, then dies before it renews it or starts a rank.
    with transaction(first.session_factory) as session:
        assert slots.claim(session, slot_id, "node-b", lease_seconds=3) is not None
    thread.join(timeout=60)

    assert not thread.is_alive(), "the first node waited on for the lost node"
    assert outcome["result"] == "failed"
    failed = api.get(f"/v1/jobs/{job['id']}").json()
    assert failed["error"]["code"] == "rank_failed"
    assert "node 1 (worker node-b) stopped renewing its slot" in failed["error"]["message"]
    assert rank_pids() == []
