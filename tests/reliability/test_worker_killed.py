"""A worker killed mid-job (SIGKILL: no chance to hand it back): the other worker takes the job
once its lease lapses and resumes it from the latest checkpoint, no epoch lost or repeated."""

from __future__ import annotations

import re
import signal
import time

import pytest

from tests.e2e.fleet import stop
from tests.reliability.jobs import submit_slow_job, wait_for_epoch
from tests.reliability.servers import running_service, sqlite_job_column

pytestmark = pytest.mark.reliability
KEY = "ty_rel_" + "k" * 24
EPOCHS = 20
KILL_AFTER_EPOCH = 8
LEASE_SECONDS = 4


def test_a_killed_workers_job_resumes_on_the_other_worker_with_no_epoch_lost_or_repeated(
    tmp_path,
) -> None:
    with (
        # A checkpoint after every epoch, so the one it resumes from is known to follow the
        # kill point; the history check holds for any interval.
        running_service(
            tmp_path, KEY, lease_seconds=str(LEASE_SECONDS), checkpoint_interval_seconds="0"
        ) as service,
        service.client() as client,
    ):
        workers = {name: service.worker(name) for name in ("worker1", "worker2")}
        _, job = submit_slow_job(client, epochs=EPOCHS)
        wait_for_epoch(client, job["id"], KILL_AFTER_EPOCH, timeout=120)
        # The worker id is host:pid, and `trainyard worker` execs Celery in its own process.
        holder = str(sqlite_job_column(service.data_dir, job["id"], "worker_id"))
        doomed = next(n for n, p in workers.items() if holder.endswith(f":{p.pid}"))
        stop(workers[doomed], signal.SIGKILL)
        killed_at = time.monotonic()

        while (current := client.get_job(job["id"]))["attempts"] < 2:
            assert time.monotonic() - killed_at < LEASE_SECONDS + 60, "never taken over"
            time.sleep(0.1)
        taken_over_after = time.monotonic() - killed_at
        finished = client.wait_for_job(job["id"], timeout=180)
        history = client.job_metrics(job["id"])["epochs"]
    print(f"taken over {taken_over_after:.1f} s after the kill; attempt {current['attempts']}")
    assert finished["status"] == "succeeded", finished["error"]
    assert finished["attempts"] >= 2
    assert [e["epoch"] for e in history] == list(range(1, EPOCHS + 1))
    # It went on from a checkpoint taken after the kill point, not from scratch.
    rescuer = next(n for n in workers if n != doomed)
    resumed = re.search(r"resumes after epoch (\d+)", (tmp_path / f"{rescuer}.log").read_text())
    assert resumed is not None and int(resumed.group(1)) >= KILL_AFTER_EPOCH
