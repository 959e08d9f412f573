from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, new_id, utcnow
from service.core.leases import LeasedColumns
from service.studies import tables as _studies  # noqa: F401  (the target of jobs.study_id)


class Job(LeasedColumns, Base):
    """A training job: a dataset and a spec, trained on a worker under a lease."""

    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("study_id", "trial_number", name="uq_jobs_study_trial"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    # Held-out sets the user uploaded apart: each replaces the split of its name, and the
    # training dataset gives up no rows to it.
    validation_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", name="fk_jobs_validation_dataset_id"), nullable=True
    )
    test_dataset_id: Mapped[str | None] = mapped_column(
        ForeignKey("datasets.id", name="fk_jobs_test_dataset_id"), nullable=True
    )
    # The spec as submitted (what the API shows), and as checked against the dataset at
    # submit, its default model filled in: the worker trains exactly the latter.
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    resolved_spec: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    metrics: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    # Training-health warnings (vanishing_gradient, overfitting, ...), each with its epoch.
    warnings: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    model_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    # What a succeeded job learned about its data and its model: rows per split, rows dropped
    # by cleaning and by the leakage guard, sampling, the test evaluation, cross-validation.
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # A study's trial: its study, its number in it (unique), and Optuna's id for it.
    study_id: Mapped[str | None] = mapped_column(
        ForeignKey("studies.id", name="fk_jobs_study_id"), nullable=True, index=True
    )
    trial_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    optuna_trial_id: Mapped[int | None] = mapped_column(Integer, nullable=True)


class JobMetric(Base):
    """One value per job, epoch and name: a re-run epoch replaces, never duplicates."""

    __tablename__ = "job_metrics"
    __table_args__ = (UniqueConstraint("job_id", "epoch", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)


class JobSlot(Base):
    """One node other than the first of a job's attempt on several nodes
    (`training.resources.nodes`): the worker that claims it joins the attempt's rendezvous
    as node `node_rank`. The first node is the worker holding the job's lease; a slot has a
    lease of its own, held while its worker's ranks run."""

    __tablename__ = "job_slots"
    __table_args__ = (UniqueConstraint("job_id", "attempt", "node_rank"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("slot"))
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    # The job's attempt this slot belongs to: a slot of an attempt that ended is not joined.
    attempt: Mapped[int] = mapped_column(Integer)
    node_rank: Mapped[int] = mapped_column(Integer)
    # host:port of the attempt's c10d rendezvous, on the first node's worker.
    endpoint: Mapped[str] = mapped_column(String(300))
    # queued -> running (claimed) -> finished.
    status: Mapped[str] = mapped_column(String(16), default="queued")
    worker_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def checkpoint_key(job_id: str) -> str:
    return f"jobs/{job_id}/checkpoint.pt"
