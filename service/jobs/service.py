"""Jobs: check a spec against its dataset, queue it, show it, cancel it, compare runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from sqlalchemy.orm import Session

from engine.spec import Spec
from engine.training.pretraining import pretraining_epochs
from service.auth.tables import Project
from service.core.database import new_id, utcnow
from service.core.deps import after_commit
from service.core.errors import NotFound, found, invalid_field
from service.core.leases import FINISHED, QUEUED, RUNNING, request_cancel
from service.core.queue import GPU_QUEUE, TRAIN_JOB_TASK, JobQueue, gpu_queue
from service.core.schemas import Page
from service.core.settings import Settings
from service.core.store import Store
from service.fleet import service as fleet
from service.fleet.tables import Worker
from service.idempotency import service as idempotency
from service.jobs.repository import jobs
from service.jobs.schemas import (
    EpochMetrics,
    JobCompared,
    JobComparison,
    JobError,
    JobMetricsOut,
    JobOut,
    Progress,
    SpecDifference,
)
from service.jobs.tables import Job, JobMetric
from service.specs.service import check_spec


def submit_job(
    session: Session,
    queue: JobQueue,
    store: Store,
    settings: Settings,
    project: Project,
    dataset_id: str,
    spec: Spec,
    idempotency_key: str | None = None,
    validation_dataset_id: str | None = None,
    test_dataset_id: str | None = None,
) -> tuple[Job, bool]:
    """Check the spec against the dataset (and any given validation and test datasets) as
    `POST /v1/specs/validate` does, then queue it: the job and True; or the job this
    project's `idempotency_key` created before and False."""
    earlier = idempotency.earlier_resource(session, project.id, idempotency.JOB, idempotency_key)
    if earlier is not None:
        return get_job(session, project, earlier), False
    dataset, resolved, _ = check_spec(
        session,
        store,
        settings,
        project,
        dataset_id,
        spec,
        validation_dataset_id=validation_dataset_id,
        test_dataset_id=test_dataset_id,
    )
    job_id = new_id("job")
    winner = idempotency.claim(session, project.id, idempotency.JOB, idempotency_key, job_id)
    if winner is not None:
        return get_job(session, project, winner), False
    job = jobs.add(
        session,
        Job(
            id=job_id,
            project_id=project.id,
            dataset_id=dataset.id,
            validation_dataset_id=validation_dataset_id,
            test_dataset_id=test_dataset_id,
            spec=spec.model_dump(mode="json"),
            resolved_spec=resolved.model_dump(mode="json"),
            status=QUEUED,
            queue=queue_for(spec, settings),
            # Sent right after the commit; the reconciler sends it again if it is lost.
            enqueued_at=utcnow(),
        ),
    )
    after_commit(session, lambda: queue.enqueue(TRAIN_JOB_TASK, job.id, job.queue))
    return job, True


def queue_for(spec: Spec, settings: Settings) -> str:
    gpus = spec.training.resources.gpus
    if gpus > 0:
        return gpu_queue(gpus)
    return GPU_QUEUE if spec.training.device == "cuda" else settings.default_queue


def get_job(session: Session, project: Project, job_id: str) -> Job:
    return found(jobs.get(session, project.id, job_id), jobs.noun, job_id)


def list_jobs(
    session: Session,
    settings: Settings,
    project: Project,
    status: str | None,
    limit: int,
    offset: int,
) -> Page[JobOut]:
    rows = jobs.list_page(session, project.id, status, limit, offset)
    live = fleet.live_workers(session, settings) if any(j.status == QUEUED for j in rows) else []
    return Page[JobOut](
        items=[job_out(j, live) for j in rows],
        total=jobs.count(session, project.id, status),
        limit=limit,
        offset=offset,
    )


def cancel_job(session: Session, project: Project, job_id: str) -> Job:
    """A queued job is cancelled at once; a running one stops at its next training step."""
    job = get_job(session, project, job_id)
    request_cancel(job, jobs.noun)
    session.flush()
    return job


def job_metrics(session: Session, project: Project, job_id: str) -> JobMetricsOut:
    job = get_job(session, project, job_id)
    epochs = epoch_metrics(jobs.metric_rows(session, job.id))
    return JobMetricsOut(job_id=job.id, epochs=epochs, warnings=job.warnings or [])


def epoch_metrics(rows: Sequence[JobMetric]) -> list[EpochMetrics]:
    """One job's history rows, ordered by epoch, as one entry per epoch."""
    return [
        EpochMetrics(epoch=epoch, values={r.name: r.value for r in group})
        for epoch, group in groupby(rows, key=lambda r: r.epoch)
    ]


# How many jobs one comparison lines up, at least and at most.
MIN_COMPARED, MAX_COMPARED = 2, 20
# The curves a client overlays first; the other names follow in alphabetical order.
LEADING_CURVES = ("train_loss", "val_loss")


def compare_jobs(session: Session, project: Project, job_ids: list[str]) -> JobComparison:
    """Several of this project's jobs side by side, in the order asked: each one's curves,
    best and last epochs, and the spec paths whose values differ among them."""
    check_compared_ids(job_ids)
    found_jobs = {job.id: job for job in jobs.get_many(session, project.id, job_ids)}
    missing = [job_id for job_id in job_ids if job_id not in found_jobs]
    if missing:
        # As GET /v1/jobs/{id}: another project's job is not found, never forbidden.
        reasons = [f"{jobs.noun} {job_id!r} not found" for job_id in missing]
        raise NotFound(
            f"ids: {'; '.join(reasons)}",
            details=[{"field": "ids", "reason": reason} for reason in reasons],
        )
    compared = [found_jobs[job_id] for job_id in job_ids]
    # Curves leave out the per-layer grad_norm/* readings: training health, not metrics to
    # overlay, and one per layer per epoch (most of the rows); GET .../metrics keeps them.
    rows = {
        job_id: list(group)
        for job_id, group in groupby(jobs.curve_rows(session, job_ids), key=lambda r: r.job_id)
    }
    return JobComparison(
        jobs=[job_compared(job, epoch_metrics(rows.get(job.id, []))) for job in compared],
        spec_differences=spec_differences([job.spec for job in compared]),
    )


def check_compared_ids(job_ids: list[str]) -> None:
    """2 to 20 ids, none empty, none twice: a 422 naming `ids` otherwise."""
    if not MIN_COMPARED <= len(job_ids) <= MAX_COMPARED:
        raise invalid_field(
            "ids",
            f"give {MIN_COMPARED} to {MAX_COMPARED} job ids, comma-separated; got {len(job_ids)}",
        )
    if any(not job_id for job_id in job_ids):
        raise invalid_field("ids", "an empty job id (two commas in a row, or one at an end)")
    seen: set[str] = set()
    for job_id in job_ids:
        if job_id in seen:
            raise invalid_field("ids", f"{job_id!r} is given more than once")
        seen.add(job_id)


def job_compared(job: Job, epochs: list[EpochMetrics]) -> JobCompared:
    names = {name for entry in epochs for name in entry.values}
    leading = [name for name in LEADING_CURVES if name in names]
    curves: dict[str, list[int | float | None]] = {"epoch": [entry.epoch for entry in epochs]}
    for name in leading + sorted(names.difference(leading)):
        # Aligned with `epoch`: a name an epoch lacks (none should) is a gap, not a shift.
        curves[name] = [entry.values.get(name) for entry in epochs]
    scored = [entry for entry in epochs if "val_loss" in entry.values]
    return JobCompared(
        id=job.id,
        status=job.status,
        dataset_id=job.dataset_id,
        spec=job.spec,
        epochs_run=len(epochs),
        best=min(scored, key=lambda entry: entry.values["val_loss"], default=None),
        last=epochs[-1] if epochs else None,
        curves=curves,
    )


def spec_differences(specs: list[dict[str, Any]]) -> list[SpecDifference]:
    """The dotted paths whose values are not all the same across `specs`, each with its
    value per spec (None where a spec lacks the path: a missing path and a null are alike)."""
    flat = [flatten_spec(spec) for spec in specs]
    differences = []
    for path in sorted(set().union(*flat)):
        values = [paths.get(path) for paths in flat]
        # JSON text compares as the client sees: `true` is not `1`, key order does not count.
        if len({json.dumps(value, sort_keys=True) for value in values}) > 1:
            differences.append(SpecDifference(path=path, values=values))
    return differences


def flatten_spec(spec: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"training": {"learning_rate": 0.01}}` -> `{"training.learning_rate": 0.01}`; a list,
    or an empty dict, is one value."""
    flat: dict[str, Any] = {}
    for key, value in spec.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten_spec(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def job_epochs(job: Job) -> int:
    """The epochs a job runs at most: its training epochs, after its pretraining's."""
    spec = Spec.model_validate(job.resolved_spec or job.spec)
    return pretraining_epochs(spec) + spec.training.epochs


def job_view(session: Session, settings: Settings, job: Job) -> JobOut:
    """The job as GET shows it: a queued one says why it waits when no worker can take it."""
    return job_out(job, fleet.live_workers(session, settings) if job.status == QUEUED else None)


def job_out(job: Job, live: list[Worker] | None = None) -> JobOut:
    """The job's record; with the `live` workers, a queued job's `waiting_reason`."""
    error = (
        JobError(code=job.error_code, message=job.error_message or "") if job.error_code else None
    )
    progress = Progress(**job.progress) if job.progress else None
    if progress is not None and job.status in FINISHED:
        progress.eta_seconds = None
    if progress is None and job.status == RUNNING:
        progress = Progress(epoch=0, epochs=job_epochs(job))
    return JobOut(
        id=job.id,
        dataset_id=job.dataset_id,
        validation_dataset_id=job.validation_dataset_id,
        test_dataset_id=job.test_dataset_id,
        status=job.status,
        queue=job.queue,
        attempts=job.attempts,
        cancel_requested=job.cancel_requested,
        progress=progress,
        metrics=job.metrics,
        warnings=job.warnings or [],
        model_id=job.model_id,
        report=job.report,
        error=error,
        spec=job.spec,
        study_id=job.study_id,
        trial_number=job.trial_number,
        waiting_reason=(
            fleet.waiting_reason(job.queue, live)
            if live is not None and job.status == QUEUED
            else None
        ),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
