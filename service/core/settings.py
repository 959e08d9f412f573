"""One settings object for the service and the workers, read once from `TRAINYARD_*`."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRAINYARD_", extra="ignore")

    # Embedded default: everything lives under data_dir, no servers needed.
    data_dir: Path = Path("var")
    database_url: str | None = None
    broker_url: str | None = None
    store_url: str | None = None
    # An s3:// store (s3fs): the endpoint of an S3-compatible server (MinIO, moto, Ceph...;
    # unset: AWS itself), the bucket's region, and a key pair. Without a key pair s3fs takes
    # the standard AWS chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, ~/.aws, an instance
    # or task role). SecretStr keeps both halves out of reprs and logs.
    store_endpoint_url: str | None = None
    store_region: str | None = None
    store_access_key_id: SecretStr | None = None
    store_secret_access_key: SecretStr | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    bootstrap_key: str | None = None
    # Creates projects and their first keys over HTTP (`/v1/projects`); unset, those routes
    # answer 403. A secret: SecretStr keeps it out of reprs and logs. It is no project's key.
    admin_key: SecretStr | None = Field(default=None, min_length=16)

    # Queues: jobs that ask for CUDA go to `gpu`, the rest to `default_queue`.
    default_queue: str = "cpu"
    worker_queues: str = "cpu,gpu"
    # Lets test runs share one Redis without reading each other's messages.
    broker_key_prefix: str = ""

    # A worker renews its lease every lease_seconds / 3; a lease that lapses means the
    # worker is gone and the job may be claimed again.
    lease_seconds: int = Field(default=60, ge=3)
    max_attempts: int = Field(default=3, ge=1)
    # A training job on several nodes (training.resources.nodes): the address the other
    # workers reach this worker's rendezvous at, and how long the nodes have to meet.
    worker_host: str = "127.0.0.1"
    rendezvous_timeout_seconds: int = Field(default=300, ge=5)
    # A training job writes a checkpoint (what a resumed job goes on from) at most this often,
    # and after its last epoch; 0 writes one after every epoch.
    checkpoint_interval_seconds: float = Field(default=30.0, ge=0)

    max_upload_mb: int = Field(default=1024, ge=1)
    # A table past either limit is refused (413) while it is read, before it is stored.
    max_rows: int = Field(default=50_000_000, ge=1)
    max_columns: int = Field(default=10_000, ge=1)
    # Arrays are decoded in memory to be checked: 2e8 float32 elements is 800 MB.
    max_array_elements: int = Field(default=200_000_000, ge=1)
    max_epochs: int = Field(default=1000, ge=1)
    max_predict_rows: int = Field(default=100_000, ge=1)
    # Loaded models' weights an API process keeps in memory; least recently used leave first.
    model_cache_mb: int = Field(default=1024, ge=1)
    # Micro-batching of concurrent predict requests per model: at most this many rows per
    # forward pass, and how long the first request waits for company (0: only those queued).
    predict_max_batch: int = Field(default=256, ge=1)
    predict_max_wait_ms: float = Field(default=0.0, ge=0.0, le=1000.0)
    # Threads a forward pass may use in an API process. Default: one fewer than the cores, so
    # the event loop keeps one: a pass split over every core stalls whenever the loop runs.
    predict_threads: int | None = Field(default=None, ge=1)
    # A line per request from the HTTP server: off by default, as it costs every predict
    # request about a tenth of its CPU (errors and jobs are logged either way).
    access_log: bool = False
    # How long the predict path trusts a key or model reference it looked up. Changes made
    # through this process apply at once; through another API process, within this time.
    # 0 looks both up on every request.
    lookup_cache_seconds: float = Field(default=1.0, ge=0.0, le=60.0)

    # Requests per second per API key (a token bucket of `rate_limit_burst`); 0 turns it off.
    # Off by default: predict callers in a request path set their own budget.
    rate_limit_per_second: float = Field(default=0.0, ge=0.0)
    rate_limit_burst: int = Field(default=100, ge=1)

    # Redis redelivers a message not acknowledged within this many seconds; a job that runs
    # longer gets a duplicate delivery, which its lease fences off.
    broker_visibility_timeout: int = Field(default=3600, ge=1)
    # A job queued this long (and not re-enqueued as long) may have lost its message (the
    # broker restarted empty): the reconciler sends it again. Duplicates are harmless.
    requeue_after_seconds: int = Field(default=60, ge=1)

    # Spec limits, checked before a job is queued (a 422 naming the field and the limit).
    # Parameters are counted on the meta device, before any weight is allocated. Above the
    # engine's own ceiling (engine.models.DEFAULT_MAX_PARAMETERS, 1e8) a worker builds nothing.
    max_parameters: int = Field(default=100_000_000, ge=1, le=100_000_000)
    # Layers the spec lists, nested ones (residual blocks) included; for a family preset, its
    # hidden widths, filter blocks or stacked recurrent layers.
    max_layers: int = Field(default=256, ge=1)
    max_batch_size: int = Field(default=65_536, ge=1)

    # A watcher of `GET .../events` gets a keep-alive comment after this many quiet seconds.
    events_ping_seconds: float = Field(default=15.0, ge=0.05, le=300.0)

    # Prometheus (service/core/metrics.py): the folder where the processes of one machine
    # (API, workers) write their metrics for `/metrics` to add up; by default `metrics/` in the
    # data dir. Local to the machine: never a shared volume.
    metrics_dir: Path | None = None
    # A worker's own `/metrics` (a fleet's workers on machines without an API): off unless a
    # port is set. Unauthenticated, as the API's `/metrics`.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    worker_metrics_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _key_pair_whole(self) -> Settings:
        if (self.store_access_key_id is None) != (self.store_secret_access_key is None):
            raise ValueError(
                "set both TRAINYARD_STORE_ACCESS_KEY_ID and TRAINYARD_STORE_SECRET_ACCESS_KEY, "
                "or neither (then the standard AWS credential chain applies)"
            )
        return self

    @cached_property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_metrics_dir(self) -> Path:
        if self.metrics_dir is not None:
            return self.metrics_dir.expanduser().resolve()
        return self.resolved_data_dir / "metrics"

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'trainyard.sqlite'}"

    @property
    def effective_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def effective_store_url(self) -> str:
        return self.store_url or (self.resolved_data_dir / "store").as_uri()

    @property
    def store_options(self) -> dict:
        """What s3fs needs beyond the URL (nothing for a file:// store). Holds the secret in
        the clear: hand it to Store, never to a log."""
        if not self.effective_store_url.startswith(("s3://", "s3a://")):
            return {}
        options: dict = {}
        if self.store_endpoint_url:
            options["endpoint_url"] = self.store_endpoint_url
        if self.store_region:
            options["client_kwargs"] = {"region_name": self.store_region}
        if self.store_access_key_id is not None and self.store_secret_access_key is not None:
            options["key"] = self.store_access_key_id.get_secret_value()
            options["secret"] = self.store_secret_access_key.get_secret_value()
        return options

    @property
    def broker_folder(self) -> Path:
        """Where the serverless (filesystem) broker keeps its messages."""
        return self.resolved_data_dir / "broker"

    @property
    def uses_embedded_broker(self) -> bool:
        return self.effective_broker_url.startswith("filesystem://")


def load_settings() -> Settings:
    return Settings()
