"""The API's resources as the client sees them, written here (not imported from the service,
which this package never imports).

Every model keeps fields it does not know (`extra="allow"`) and gives every field a default,
so an answer from a newer service (a field more) or an older one (a field less) still reads.
`model_dump(exclude_unset=True)` gives back exactly what the service sent.

`resource["field"]`, `resource.get("field")` and `"field" in resource` still work: the first
SDK returned dicts, and the scripts, tests and benchmarks written against it read them so.
New code reads attributes (`job.status`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field


class Resource(BaseModel):
    model_config = ConfigDict(extra="allow", protected_namespaces=())

    # ---- the dict-style reading of the first SDK ----

    def __getitem__(self, name: str) -> Any:
        if name in self.model_fields_set or name in type(self).model_fields:
            return getattr(self, name)
        extra = self.__pydantic_extra__ or {}
        if name in extra:
            return extra[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self.model_fields_set or name in (self.__pydantic_extra__ or {})
        )

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def to_json(self) -> dict[str, Any]:
        """The answer as the service sent it, JSON-ready (what `--json` prints)."""
        return self.model_dump(mode="json", exclude_unset=True)


T = TypeVar("T")


class Page(Resource, Generic[T]):
    """One page of a list: `items`, and `total` across all pages."""

    items: list[T] = Field(default_factory=list)
    total: int = 0
    limit: int = 0
    offset: int = 0


# ---- datasets -------------------------------------------------------------------------------


class Column(Resource):
    name: str = ""
    type: str = ""
    dtype: str = ""
    missing: int = 0


class Dataset(Resource):
    id: str = ""
    name: str = ""
    kind: str = ""
    source_format: str = ""
    rows: int = 0
    columns: list[Column] = Field(default_factory=list)
    arrays: dict[str, Any] | None = None
    size_bytes: int = 0
    sha256: str = ""
    created_at: datetime | None = None


class DatasetProfile(Resource):
    """Per column statistics (`columns`), `warnings`, and with a target its `target` block;
    the nested parts stay plain dicts."""

    dataset_id: str = ""
    rows: int = 0
    duplicate_rows: int = 0
    columns: list[dict[str, Any]] = Field(default_factory=list)
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    target: dict[str, Any] | None = None


class SpecCheck(Resource):
    input_shape: list[Any] = Field(default_factory=list)
    output_shape: list[Any] = Field(default_factory=list)
    layers: list[dict[str, Any]] = Field(default_factory=list)
    parameters: int = 0
    model: dict[str, Any] = Field(default_factory=dict)


# ---- jobs -----------------------------------------------------------------------------------


class Progress(Resource):
    epoch: int = 0
    epochs: int = 0
    fold: int | None = None
    folds: int | None = None
    samples_per_second: float | None = None
    eta_seconds: float | None = None


class JobError(Resource):
    code: str = ""
    message: str = ""


class Job(Resource):
    """A training job; `status` is queued, running, succeeded, failed or cancelled."""

    id: str = ""
    status: str = ""
    dataset_id: str = ""
    spec: dict[str, Any] = Field(default_factory=dict)
    queue: str = ""
    attempts: int = 0
    cancel_requested: bool = False
    progress: Progress | None = None
    metrics: dict[str, float] | None = None
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    error: JobError | None = None
    model_id: str | None = None
    report: dict[str, Any] | None = None
    study_id: str | None = None
    trial_number: int | None = None
    validation_dataset_id: str | None = None
    test_dataset_id: str | None = None
    waiting_reason: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class EpochMetrics(Resource):
    epoch: int = 0
    values: dict[str, float] = Field(default_factory=dict)


class JobMetrics(Resource):
    job_id: str = ""
    epochs: list[EpochMetrics] = Field(default_factory=list)
    warnings: list[dict[str, Any]] = Field(default_factory=list)


class JobComparison(Resource):
    """Per job its curves, best and last epochs (`jobs`), and the spec paths whose values
    differ (`spec_differences`)."""

    jobs: list[dict[str, Any]] = Field(default_factory=list)
    spec_differences: list[dict[str, Any]] = Field(default_factory=list)


# ---- studies --------------------------------------------------------------------------------


class Trial(Resource):
    number: int = 0
    state: str = ""
    job_id: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    value: float | None = None
    epochs_run: int = 0
    duration_seconds: float | None = None
    error: str | None = None


class BestTrial(Resource):
    number: int = 0
    job_id: str = ""
    model: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    value: float = 0.0


class Objective(Resource):
    metric: str = ""
    direction: str = ""


class Study(Resource):
    """A hyperparameter search; `status` is running, succeeded, failed or cancelled."""

    id: str = ""
    name: str = ""
    status: str = ""
    dataset_id: str = ""
    objective: Objective = Field(default_factory=Objective)
    sampler: str = ""
    pruner: str = ""
    max_trials: int = 0
    parallel_trials: int = 0
    max_failed_trials: int = 0
    counts: dict[str, int] = Field(default_factory=dict)
    trials: list[Trial] = Field(default_factory=list)
    best: BestTrial | None = None
    importances: dict[str, float] | None = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status != "running"


# ---- models ---------------------------------------------------------------------------------


class Model(Resource):
    """One registered version, as `GET /v1/models/{ref}` answers."""

    id: str = ""
    name: str = ""
    version: int = 0
    task: str = ""
    job_id: str = ""
    dataset_id: str = ""
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class ModelName(Resource):
    """A registered name: its latest version and its aliases (alias -> version)."""

    name: str = ""
    latest_version: int = 0
    versions: int = 0
    aliases: dict[str, int] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class ModelVersion(Resource):
    id: str = ""
    name: str = ""
    version: int = 0
    aliases: list[str] = Field(default_factory=list)
    job_id: str = ""
    dataset_id: str = ""
    spec: dict[str, Any] = Field(default_factory=dict)
    test_metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None


class Alias(Resource):
    name: str = ""
    alias: str = ""
    version: int = 0
    model_id: str = ""
    updated_at: datetime | None = None


class Prediction(Resource):
    """One row's answer: `label` and `probabilities` (classification), `value` or `values`
    (regression, forecasting), `anomaly_score` (autoencoder); only what applies is set."""

    label: Any = None
    probabilities: dict[str, float] | None = None
    value: float | None = None
    values: list[Any] | None = None
    anomaly_score: float | None = None


class Encoding(Resource):
    model_id: str = ""
    embeddings: list[list[float]] = Field(default_factory=list)


class Explanation(Resource):
    """One instance's attributions: per raw column (tables), per time step (sequences,
    forecasting windows; `per_channel` [T, C]), per position (vectors) or a saliency map
    [H, W] (images), towards `target` (a class, or a 1-based output)."""

    prediction: Prediction | None = None
    target: Any = None
    attributions: dict[str, float] | list[Any] = Field(default_factory=list)
    channels: list[str] | None = None
    per_channel: list[list[float]] | None = None
    convergence_delta: float = 0.0


class ModelExplanation(Resource):
    model_id: str = ""
    method: str = ""
    n_steps: int = 0
    baseline: str = ""
    explanations: list[Explanation] = Field(default_factory=list)


class GeneratedImage(Resource):
    png: str = ""  # a PNG, base64
    label: Any = None


class Samples(Resource):
    """What a GAN made: `rows` of raw column values (a table model) or base64 PNG `images`;
    the `seed` that makes them again."""

    model_id: str = ""
    kind: str = ""
    n: int = 0
    seed: int = 0
    label: Any = None
    rows: list[dict[str, Any]] | None = None
    images: list[GeneratedImage] | None = None


class BatchProgress(Resource):
    rows_done: int = 0
    rows_total: int = 0


class BatchPrediction(Resource):
    id: str = ""
    status: str = ""
    model_id: str = ""
    dataset_id: str = ""
    format: str = ""
    id_column: str | None = None
    attempts: int = 0
    cancel_requested: bool = False
    progress: BatchProgress = Field(default_factory=BatchProgress)
    error: JobError | None = None
    result_url: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class Evaluation(Resource):
    """A model scored on a stored labelled dataset; `report` once succeeded (the metrics of
    a job's test report)."""

    id: str = ""
    status: str = ""
    model_id: str = ""
    model_name: str = ""
    model_version: int = 0
    dataset_id: str = ""
    attempts: int = 0
    cancel_requested: bool = False
    report: dict[str, Any] | None = None
    error: JobError | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


# ---- keys and projects ----------------------------------------------------------------------


class Key(Resource):
    """An API key as listed: never its secret, only its first characters (`prefix`)."""

    id: str = ""
    name: str = ""
    prefix: str = ""
    created_at: datetime | None = None
    revoked_at: datetime | None = None


class KeyCreated(Key):
    secret: str = ""


class KeyList(Resource):
    items: list[Key] = Field(default_factory=list)


class Project(Resource):
    id: str = ""
    name: str = ""
    created_at: datetime | None = None


class ProjectCreated(Project):
    key: KeyCreated = Field(default_factory=KeyCreated)


class Health(Resource):
    """`status` ok (or failing, with `checks` naming what is not reachable)."""

    status: str = ""
    checks: dict[str, Any] = Field(default_factory=dict)


FINISHED = ("succeeded", "failed", "cancelled")


# ---- the fleet (admin) ----------------------------------------------------------------------


class Worker(Resource):
    id: str = ""
    hostname: str = ""
    queues: list[str] = Field(default_factory=list)
    cuda_devices: int = 0
    cuda_memory_bytes: list[int] = Field(default_factory=list)
    started_at: datetime | None = None
    last_seen_at: datetime | None = None


class WorkerList(Resource):
    items: list[Worker] = Field(default_factory=list)
