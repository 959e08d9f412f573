"""Studies: check a search space against the spec rules and the dataset, make trials as
training jobs, and advance the study as its trials end.

A study advances whenever something may have changed: once when it is created (its first
`parallel_trials` trials), and each time one of its trials ends, on the worker that ran it
(`trial_observer.py`). Advancing tells Optuna how each ended trial did, asks it for new
trials up to `parallel_trials` running and `max_trials` in all, and ends the study when every
trial has ended. Two workers advancing one study at once cannot make a trial number twice:
(study_id, trial_number) is unique, and the loser advances again.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

import optuna
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import DataError, SpecMismatch
from engine.search.sampling import baseline_params, grid_of, grid_size, suggest_values
from engine.search.space import SearchSpace, check_space_points, spec_for_trial
from engine.spec import Spec
from engine.training.recipe import dry_run
from service.auth.tables import Project
from service.core.database import new_id, utcnow
from service.core.errors import found, invalid_field
from service.core.leases import CANCELLED as JOB_CANCELLED
from service.core.leases import FAILED as JOB_FAILED
from service.core.leases import FINISHED, QUEUED, request_cancel
from service.core.leases import RUNNING as JOB_RUNNING
from service.core.leases import SUCCEEDED as JOB_SUCCEEDED
from service.core.settings import Settings
from service.core.store import Store
from service.datasets.service import get_dataset, read_dataset
from service.jobs.repository import jobs
from service.jobs.service import queue_for
from service.jobs.tables import Job
from service.models import repository as models
from service.models.tables import Model, ModelAlias
from service.specs.service import check_spec_limits
from service.studies.schemas import (
    BestTrial,
    ObjectiveOut,
    StudyCreate,
    StudyOut,
    TrialOut,
    TrialState,
)
from service.studies.search import build_sampler, optuna_storage
from service.studies.tables import CANCELLED, FAILED, RUNNING, SUCCEEDED, Study

# The metric a study optimises when it names none, and which way.
DEFAULT_OBJECTIVE = {
    "classification": "val_accuracy",
    "regression": "val_r2",
    "forecasting": "val_rmse",
    "reconstruction": "val_loss",
}
TASK_METRICS = {
    "classification": ("val_accuracy", "val_loss", "train_loss"),
    "regression": ("val_r2", "val_mae", "val_loss", "train_loss"),
    "forecasting": ("val_rmse", "val_mae", "val_loss", "train_loss"),
    "reconstruction": ("val_loss", "train_loss"),
}
# Objectives read off the cross-validation (with data.split.folds): the folds' mean of a test
# metric. Steadier than one validation split on small data, where picking the best of many
# trials by it overfits that split; no pruning (folds report once each, not per epoch).
CV_PREFIX = "cv_"
CV_METRICS = {
    "classification": ("cv_accuracy", "cv_f1_macro", "cv_roc_auc"),
    "regression": ("cv_r2", "cv_rmse", "cv_mae"),
    "forecasting": ("cv_rmse", "cv_mae"),
    "reconstruction": (),
}
MAXIMISED = ("val_accuracy", "val_r2", "cv_accuracy", "cv_f1_macro", "cv_roc_auc", "cv_r2")
BEST_ALIAS = "best"
IMPORTANCE_MIN_TRIALS = 4
# An Optuna trial with no job this long after it was asked for was made by an advance that
# rolled back (two workers advancing at once); it is closed as failed. Long enough for any
# advance in progress to commit its jobs.
ORPHAN_AFTER = timedelta(seconds=60)
PRUNED = "pruned"  # the error code of a trial job a pruner stopped


def create_study(
    session: Session, store: Store, settings: Settings, project: Project, body: StudyCreate
) -> tuple[Study, list[Job]]:
    """The study and its first trials (queued by the caller once committed). Every corner of
    the space is checked against the spec rules and the dataset first: a 422 names the path."""
    dataset = get_dataset(session, project, body.dataset_id)
    task = body.spec.task
    if task not in DEFAULT_OBJECTIVE:
        # A GAN's losses say how its two networks balance, not how good its samples are.
        raise invalid_field(
            "spec.task", f"a study needs a metric to optimise; task {task} has none it can use"
        )
    metric = body.objective.metric or DEFAULT_OBJECTIVE[task]
    known = TASK_METRICS[task] + CV_METRICS[task]
    if metric not in known:
        raise invalid_field(
            "objective.metric",
            f"{metric!r} is not a metric of a {task} job; one of {', '.join(known)}",
        )
    if metric.startswith(CV_PREFIX) and body.spec.data.split.folds is None:
        raise invalid_field(
            "objective.metric",
            f"{metric!r} is the cross-validation's mean: the spec needs data.split.folds",
        )
    if metric.startswith("val_") and body.spec.data.split.validation == 0:
        # Trials would train with no validation rows, so with no value to report.
        raise invalid_field(
            "objective.metric",
            f"{metric!r} is measured on validation rows, and the spec's data.split.validation "
            "is 0: keep a validation split, or optimise a cv_ metric with data.split.folds",
        )
    direction = body.objective.direction or ("maximize" if metric in MAXIMISED else "minimize")
    max_trials = body.max_trials
    if body.sampler == "grid":
        try:
            max_trials = min(max_trials, grid_size(grid_of(body.search_space)))
        except ValueError as exc:
            raise invalid_field("search_space", str(exc)) from exc
    study_id = new_id("stu")
    name = body.name or f"study-{study_id}"
    base = {**body.spec.model_dump(mode="json"), "model_name": name}
    resolved = _check_points(store, settings, dataset, base, body.search_space)

    searched = optuna.create_study(
        study_name=study_id,
        storage=optuna_storage(settings),
        direction=direction,
        sampler=build_sampler(body.sampler, body.seed, _grid(body.sampler, body.search_space)),
    )
    if body.baseline and body.sampler != "grid":
        # Trial 0 trains the base spec itself, where the space can hold it: the search
        # starts from what the user would have trained, and its best is measured against it.
        params = baseline_params(body.search_space, resolved)
        if params is not None:
            searched.enqueue_trial(params)
    study = Study(
        id=study_id,
        project_id=project.id,
        dataset_id=dataset.id,
        name=name,
        base_spec=base,
        search_space=body.search_space.model_dump(mode="json"),
        objective_metric=metric,
        direction=direction,
        max_trials=max_trials,
        parallel_trials=body.parallel_trials,
        max_failed_trials=body.max_failed_trials,
        sampler=body.sampler,
        pruner=body.pruner,
        seed=body.seed,
        status=RUNNING,
        cancel_requested=False,
    )
    session.add(study)
    session.flush()
    return study, advance(session, store, settings, study.id).new


def _check_points(
    store: Store, settings: Settings, dataset: Any, base: dict, space: SearchSpace
) -> dict[str, Any]:
    """Check every corner; the base spec resolved on the dataset (its default model filled
    in)."""
    try:
        documents = check_space_points(base, space)
    except SpecMismatch as exc:
        raise invalid_field(exc.field, exc.reason, code="invalid_spec") from exc
    data = read_dataset(store, dataset)
    try:
        resolved, _ = dry_run(Spec.model_validate(base), data, settings.max_parameters)
    except SpecMismatch as exc:
        raise invalid_field(f"spec.{exc.field}", exc.reason, code="invalid_spec") from exc
    except DataError as exc:
        raise invalid_field("dataset_id", exc.message, code="bad_dataset") from exc
    for document in documents:
        spec = Spec.model_validate(document)
        try:
            check_spec_limits(spec, settings, dataset.rows)
            dry_run(spec, data, max_parameters=settings.max_parameters)
        except SpecMismatch as exc:
            raise invalid_field(
                "search_space", f"a trial at {_point(space, document)} breaks {exc}"
            ) from exc
        except DataError as exc:
            raise invalid_field("dataset_id", exc.message, code="bad_dataset") from exc
    return resolved.model_dump(mode="json")


def _point(space: SearchSpace, document: dict) -> dict[str, Any]:
    """The values a trial's spec holds at the space's paths (those its conditions make
    active)."""
    point: dict[str, Any] = {}
    for path in space.root:
        if not space.active(path, point):
            continue
        node: Any = document
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        point[path] = node
    return point


def _grid(sampler: str, space: SearchSpace) -> dict[str, list] | None:
    return grid_of(space) if sampler == "grid" else None


def optuna_study(
    settings: Settings, study: Study, trials_made: int = 0, **options: Any
) -> optuna.Study:
    """The study's Optuna side, with a sampler seeded by the study's seed and the trials made
    so far: a sampler lives for one advance, and one seeded alike each time would propose
    the same first point every time."""
    space = SearchSpace.model_validate(study.search_space)
    seed = (study.seed * 1_000_003 + trials_made) % 2**32
    return optuna.load_study(
        study_name=study.id,
        storage=optuna_storage(settings),
        sampler=build_sampler(study.sampler, seed, _grid(study.sampler, space)),
        **options,
    )


class Advanced(NamedTuple):
    """What one advance did that must be told once it is committed."""

    new: list[Job]  # trial jobs to send to the queue
    cancelled: list[str]  # ids of queued trials it cancelled at once (a study that failed)


def advance(session: Session, store: Store, settings: Settings, study_id: str) -> Advanced:
    """Tell Optuna of every ended trial, queue new ones as room allows, end the study when
    all its trials have ended."""
    study = session.scalar(select(Study).where(Study.id == study_id).with_for_update())
    if study is None:
        return Advanced([], [])
    trials = trial_jobs(session, study.id)
    searched = optuna_study(settings, study, trials_made=len(trials))
    close_orphan_trials(searched, {job.optuna_trial_id for job in trials})
    metrics = model_metrics_of(session, trials)
    completed = [
        _tell(searched, study, job, metrics.get(job.id)) for job in trials if job.status in FINISHED
    ]
    if any(completed):
        study.importances = _importances(searched)
    if study.status != RUNNING:
        return Advanced([], [])
    states = [trial_state(job) for job in trials]
    if states.count("failed") > study.max_failed_trials:
        cancelled = _end(
            session,
            study,
            FAILED,
            f"{states.count('failed')} trials failed, over the "
            f"study's max_failed_trials of {study.max_failed_trials}",
        )
        return Advanced([], cancelled)
    active = sum(state in ("queued", "running") for state in states)
    made = len(trials)
    space = SearchSpace.model_validate(study.search_space)
    new: list[Job] = []
    while made < study.max_trials and active < study.parallel_trials:
        new.append(_new_trial(session, settings, study, searched, space, made))
        made += 1
        active += 1
    if made >= study.max_trials and active == 0:
        _finish(session, searched, study)
    return Advanced(new, [])


def _new_trial(
    session: Session,
    settings: Settings,
    study: Study,
    searched: optuna.Study,
    space: SearchSpace,
    number: int,
) -> Job:
    trial = searched.ask()
    values = suggest_values(trial, space)
    document = spec_for_trial(study.base_spec, values)
    spec = Spec.model_validate(document)
    job = Job(
        id=new_id("job"),
        project_id=study.project_id,
        dataset_id=study.dataset_id,
        spec=document,
        status=QUEUED,
        queue=queue_for(spec, settings),
        enqueued_at=utcnow(),
        study_id=study.id,
        trial_number=number,
        optuna_trial_id=trial._trial_id,
    )
    jobs.add(session, job)
    return job


def _tell(
    searched: optuna.Study, study: Study, job: Job, model_metrics: dict[str, float] | None
) -> bool:
    """Optuna hears how an ended trial did, once (a trial it already closed is left alone).
    True when it was told of a new complete trial."""
    storage = searched._storage
    if job.optuna_trial_id is None:
        return False
    if storage.get_trial(job.optuna_trial_id).state != optuna.trial.TrialState.RUNNING:
        return False
    trial = optuna.trial.Trial(searched, job.optuna_trial_id)
    state = trial_state(job)
    value = trial_value(job, study, model_metrics)
    if state == "succeeded" and value is not None:
        searched.tell(trial, value)
        return True
    if state == "pruned":
        searched.tell(trial, state=optuna.trial.TrialState.PRUNED)
    else:
        searched.tell(trial, state=optuna.trial.TrialState.FAIL)
    return False


def close_orphan_trials(searched: optuna.Study, owned: set[int | None]) -> list[int]:
    """Fail the Optuna trials no job owns: Optuna commits `ask` at once, so an advance whose
    own transaction rolled back leaves one behind, running forever (and, under the grid
    sampler, holding a grid point). The Optuna trial ids closed."""
    # Optuna stamps trials with the local time, without a zone.
    before = datetime.now() - ORPHAN_AFTER
    orphans = [
        trial
        for trial in searched.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        if trial._trial_id not in owned
        and trial.datetime_start is not None
        and trial.datetime_start <= before
    ]
    for trial in orphans:
        searched.tell(trial.number, state=optuna.trial.TrialState.FAIL)
    return [trial._trial_id for trial in orphans]


def _finish(session: Session, searched: optuna.Study, study: Study) -> None:
    complete = searched.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        _end(session, study, FAILED, "no trial succeeded")
        return
    best = _best_trial(complete, searched.direction)
    job = session.scalar(
        select(Job).where(Job.study_id == study.id, Job.optuna_trial_id == best._trial_id)
    )
    study.best_job_id = job.id if job is not None else None
    if job is not None and job.model_id is not None:
        _point_best_alias(session, study, job.model_id)
    _end(session, study, SUCCEEDED, None)


def _best_trial(
    complete: list[optuna.trial.FrozenTrial], direction: optuna.study.StudyDirection
) -> optuna.trial.FrozenTrial:
    """The complete trial with the best value; among equals the earliest, so the base spec's
    trial 0 keeps its place unless a trial beats it (Optuna's own best_trial breaks ties in
    whatever order the database returns them)."""
    sign = 1 if direction == optuna.study.StudyDirection.MAXIMIZE else -1
    return max(complete, key=lambda trial: (sign * trial.value, -trial.number))


def _point_best_alias(session: Session, study: Study, model_id: str) -> None:
    model = models.get(session, study.project_id, model_id)
    if model is None:
        return
    alias = models.get_alias(session, study.project_id, model.name, BEST_ALIAS)
    if alias is None:
        models.add_alias(
            session,
            ModelAlias(
                project_id=study.project_id,
                name=model.name,
                alias=BEST_ALIAS,
                version=model.version,
            ),
        )
    else:
        alias.version = model.version
        alias.updated_at = utcnow()


def _end(session: Session, study: Study, status: str, error: str | None) -> list[str]:
    """End the study; a failed or cancelled one cancels its trials. Returns the ids of the
    trials it cancelled at once (queued ones: no worker will tell their watchers)."""
    study.status = status
    study.error_message = error
    study.finished_at = utcnow()
    cancelled_at_once = []
    if status != SUCCEEDED:
        for job in trial_jobs(session, study.id):
            if job.status in (QUEUED, JOB_RUNNING):
                request_cancel(job, jobs.noun)
                if job.status == JOB_CANCELLED:
                    cancelled_at_once.append(job.id)
    session.flush()
    return cancelled_at_once


def cancel_study(session: Session, project: Project, study_id: str) -> tuple[Study, list[str]]:
    """Nothing more is queued; queued trials are cancelled at once, running ones stop at
    their next step. Returns the study and the ids of the trials cancelled at once."""
    study = get_study(session, project, study_id)
    if study.status != RUNNING:
        return study, []
    study.cancel_requested = True
    return study, _end(session, study, CANCELLED, None)


def get_study(session: Session, project: Project, study_id: str) -> Study:
    study = session.scalar(
        select(Study).where(Study.id == study_id, Study.project_id == project.id)
    )
    return found(study, "study", study_id)


def list_studies(
    session: Session, project: Project, limit: int, offset: int
) -> tuple[list[Study], int]:
    query = select(Study).where(Study.project_id == project.id)
    rows = session.scalars(
        query.order_by(Study.created_at.desc(), Study.id).limit(limit).offset(offset)
    ).all()
    total = len(session.scalars(query.with_only_columns(Study.id)).all())
    return list(rows), total


def stalled_study_ids(session: Session, quiet_for: timedelta) -> list[str]:
    """Running studies with room for trials (or every trial ended) and no trial ended for
    `quiet_for`: a worker that ended a trial died before it could advance the study."""
    before = utcnow() - quiet_for
    stalled = []
    for study in session.scalars(select(Study).where(Study.status == RUNNING)):
        trials = trial_jobs(session, study.id)
        active = sum(job.status in (QUEUED, JOB_RUNNING) for job in trials)
        room = len(trials) < study.max_trials and active < study.parallel_trials
        if not (room or active == 0):
            continue
        ended = [job.finished_at for job in trials if job.finished_at is not None]
        if max(ended, default=study.created_at) <= before:
            stalled.append(study.id)
    return stalled


def trial_jobs(session: Session, study_id: str) -> list[Job]:
    return list(
        session.scalars(select(Job).where(Job.study_id == study_id).order_by(Job.trial_number))
    )


def trial_state(job: Job) -> TrialState:
    if job.status == JOB_CANCELLED and job.error_code == PRUNED:
        return "pruned"
    return job.status  # type: ignore[return-value]


def trial_value(job: Job, study: Study, model_metrics: dict[str, float] | None) -> float | None:
    """The objective of the trained model's weights (the restored best epoch's under early
    stopping): its registered model's validation metrics; or, for a `cv_` objective, the
    mean over the cross-validation's folds."""
    if job.status != JOB_SUCCEEDED:
        return None
    metric = study.objective_metric
    if metric.startswith(CV_PREFIX):
        mean = ((job.report or {}).get("cross_validation") or {}).get("mean") or {}
        value = mean.get(metric.removeprefix(CV_PREFIX))
    else:
        value = (model_metrics or {}).get(metric)
    return float(value) if value is not None else None


def model_metrics_of(session: Session, trials: list[Job]) -> dict[str, dict[str, float]]:
    """{job id: its model's metrics} for the trials that registered a model."""
    ids = [job.model_id for job in trials if job.model_id]
    if not ids:
        return {}
    rows = session.scalars(select(Model).where(Model.id.in_(ids)))
    by_model = {row.id: row.metrics or {} for row in rows}
    return {job.id: by_model.get(job.model_id, {}) for job in trials if job.model_id}


def trial_out(
    job: Job, study: Study, space: SearchSpace, model_metrics: dict[str, float] | None
) -> TrialOut:
    started, finished = job.started_at, job.finished_at
    return TrialOut(
        number=job.trial_number or 0,
        job_id=job.id,
        state=trial_state(job),
        params=_point(space, job.spec),
        value=trial_value(job, study, model_metrics),
        epochs_run=(job.progress or {}).get("epoch", 0),
        duration_seconds=(finished - started).total_seconds() if started and finished else None,
        error=job.error_message if job.status in (JOB_FAILED, JOB_CANCELLED) else None,
    )


def study_out(session: Session, study: Study) -> StudyOut:
    space = SearchSpace.model_validate(study.search_space)
    rows = trial_jobs(session, study.id)
    metrics = model_metrics_of(session, rows)
    trials = [trial_out(job, study, space, metrics.get(job.id)) for job in rows]
    counts: dict[str, int] = dict.fromkeys(
        ("queued", "running", "succeeded", "pruned", "failed", "cancelled"), 0
    )
    for trial in trials:
        counts[trial.state] += 1
    best = None
    if study.best_job_id is not None:
        chosen = next((t for t in trials if t.job_id == study.best_job_id), None)
        if chosen is not None and chosen.value is not None:
            best = BestTrial(
                number=chosen.number,
                job_id=chosen.job_id,
                params=chosen.params,
                value=chosen.value,
                model=f"{study.name}@{BEST_ALIAS}",
            )
    return StudyOut(
        id=study.id,
        name=study.name,
        dataset_id=study.dataset_id,
        status=study.status,  # type: ignore[arg-type]
        objective=ObjectiveOut(metric=study.objective_metric, direction=study.direction),  # type: ignore[arg-type]
        max_trials=study.max_trials,
        parallel_trials=study.parallel_trials,
        max_failed_trials=study.max_failed_trials,
        sampler=study.sampler,
        pruner=study.pruner,
        counts=counts,  # type: ignore[arg-type]
        best=best,
        trials=trials,
        importances=study.importances,
        error=study.error_message,
        created_at=study.created_at,
        finished_at=study.finished_at,
    )


def _importances(searched: optuna.Study) -> dict[str, float] | None:
    complete = searched.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) < IMPORTANCE_MIN_TRIALS:
        return None
    try:
        importances = optuna.importance.get_param_importances(searched)
    except (ValueError, RuntimeError):
        # Too few distinct values (every trial chose alike) leave nothing to apportion.
        return None
    return {name: round(float(value), 4) for name, value in importances.items()}


def trial_event(session: Session, study: Study, job: Job) -> dict[str, Any]:
    """A study watcher's `trial` event: a trial queued or ended, as the trials table shows it."""
    space = SearchSpace.model_validate(study.search_space)
    metrics = model_metrics_of(session, [job]).get(job.id)
    trial = trial_out(job, study, space, metrics)
    return trial.model_dump(mode="json", include={"number", "job_id", "state", "value", "params"})


def study_snapshot(study: Study) -> dict[str, Any]:
    snapshot: dict[str, Any] = {"status": study.status}
    if study.error_message:
        snapshot["error"] = study.error_message
    return snapshot
