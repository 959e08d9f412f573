"""A study's eye on its trials, on the worker that trains one: the objective reported to
Optuna each epoch, the pruner asked whether to go on, and the study advanced once the trial
has ended (so the next trials are queued by whichever worker finished one). A worker that
died between ending a trial and advancing its study leaves it stalled; every worker's
reconciler advances such studies (`advance_stalled_studies`)."""

from __future__ import annotations

import logging
from datetime import timedelta

import optuna
from sqlalchemy.exc import IntegrityError, OperationalError

from engine.training.trainer import EpochReport
from service.core.database import transaction
from service.core.events import TRIAL, EventBus, job_topic, study_topic
from service.core.leased_run import WorkerResources
from service.core.leases import CANCELLED as JOB_CANCELLED
from service.core.leases import FINISHED
from service.core.queue import TRAIN_JOB_TASK
from service.jobs.tables import Job
from service.studies import service
from service.studies.search import build_pruner
from service.studies.tables import Study

log = logging.getLogger(__name__)
# Two workers advancing one study at once: the loser's trial numbers collide; it tries again.
ADVANCE_ATTEMPTS = 5
# Outcomes after which the trial's state did not change: nothing to advance.
UNCHANGED = ("skipped", "released", "lost")


class TrialObserver:
    def __init__(self, resources: WorkerResources, study: Study, job: Job) -> None:
        self.resources = resources
        self.study_id = study.id
        self.metric = study.objective_metric
        self.pruner_name = study.pruner
        # With no pruner nothing reads the intermediate values: spare Optuna a write an epoch.
        self.reports = study.pruner != "none"
        searched = service.optuna_study(
            resources.settings, study, pruner=build_pruner(study.pruner)
        )
        self.trial = optuna.trial.Trial(searched, job.optuna_trial_id)
        self.job_id = job.id

    def on_epoch(self, report: EpochReport) -> str | None:
        value = report.metrics.get(self.metric)
        if value is None or not self.reports:
            return None
        self.trial.report(value, report.epoch)
        if self.trial.should_prune():
            return (
                f"pruned by the study's {self.pruner_name} pruner after epoch {report.epoch}: "
                f"{self.metric} {value:.4g} is behind the other trials at that epoch"
            )
        return None

    def on_end(self, outcome: str) -> None:
        if outcome not in UNCHANGED:
            advance_study(self.resources, self.study_id, ended_job_id=self.job_id)


def observe_trial(job: Job, resources: WorkerResources) -> TrialObserver | None:
    """The observer of a study's trial; None for a job of no study."""
    if job.study_id is None or job.optuna_trial_id is None:
        return None
    with transaction(resources.session_factory) as session:
        study = session.get(Study, job.study_id)
        if study is None:
            return None
        session.expunge(study)
    return TrialObserver(resources, study, job)


def advance_study(
    resources: WorkerResources, study_id: str, ended_job_id: str | None = None
) -> None:
    """Advance the study in a transaction of its own, then send its new trials and tell the
    study's watchers of the trial that ended (`ended_job_id`), the new ones and its end."""
    for attempt in range(1, ADVANCE_ATTEMPTS + 1):
        try:
            with transaction(resources.session_factory) as session:
                new, cancelled = service.advance(
                    session, resources.store, resources.settings, study_id
                )
                sends = [(job.id, job.queue) for job in new]
                study = session.get(Study, study_id)
                ended = session.get(Job, ended_job_id) if ended_job_id else None
                trials = [
                    service.trial_event(session, study, job)
                    for job in ([ended] if ended is not None else []) + new
                ]
                outcome = (study.status, study.error_message) if study is not None else None
            break
        except (IntegrityError, OperationalError):
            if attempt == ADVANCE_ATTEMPTS:
                log.exception("study %s could not be advanced", study_id)
                return
    for job_id, queue in sends:
        resources.queue.enqueue(TRAIN_JOB_TASK, job_id, queue)
    for job_id in cancelled:
        resources.events.end(job_topic(job_id), JOB_CANCELLED)
    publish_study_events(resources.events, study_id, trials, outcome)


def publish_study_events(
    events: EventBus,
    study_id: str,
    trials: list[dict],
    outcome: tuple[str, str | None] | None,
) -> None:
    """`trial` events, then the study's end if it has ended."""
    topic = study_topic(study_id)
    for trial in trials:
        events.publish(topic, TRIAL, trial)
    if outcome is not None and outcome[0] in FINISHED:
        events.end(topic, *outcome)


def advance_stalled_studies(
    resources: WorkerResources, quiet_for: timedelta | None = None
) -> list[str]:
    """Advance the studies whose trials' workers died before advancing them (no trial ended
    for `quiet_for`, a lease by default); their ids."""
    if quiet_for is None:
        quiet_for = timedelta(seconds=resources.settings.lease_seconds)
    with transaction(resources.session_factory) as session:
        stalled = service.stalled_study_ids(session, quiet_for)
    for study_id in stalled:
        log.warning("study %s stalled with room for trials: advancing it", study_id)
        advance_study(resources, study_id)
    return stalled
