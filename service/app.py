"""The FastAPI application: resources on app.state, one router per domain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp

from service.auth.rate_limit import RateLimiter
from service.auth.router import projects_router
from service.auth.router import router as keys_router
from service.batch_predictions.repository import batch_predictions
from service.batch_predictions.router import model_router as batch_submit_router
from service.batch_predictions.router import router as batch_predictions_router
from service.core.database import create_db_engine, create_session_factory
from service.core.errors import install_error_handlers
from service.core.events import create_event_bus
from service.core.leases import LeasedWorkRepository
from service.core.lookups import RecentLookups
from service.core.metrics import HttpMetrics, QueueDepth, StatusCounts, exposition_registry
from service.core.queue import JobQueue, create_celery
from service.core.settings import Settings, load_settings
from service.core.store import Store
from service.datasets.router import router as datasets_router
from service.evaluations.router import model_router as evaluation_model_router
from service.evaluations.router import router as evaluations_router
from service.fleet.router import router as workers_router
from service.health.router import router as health_router
from service.jobs.repository import jobs
from service.jobs.router import router as jobs_router
from service.models.cache import ModelCache
from service.models.lane import PredictLane
from service.models.router import predict_router
from service.models.router import router as models_router
from service.models.serving import ServingService
from service.specs.router import router as specs_router
from service.studies.router import router as studies_router

API_VERSION = "0.1.0"
# The dashboard: static files, no build step; it calls the API with the user's key.
WEB_DIR = Path(__file__).resolve().parents[1] / "web"


class TrainyardAPI(FastAPI):
    def build_middleware_stack(self) -> ASGIApp:
        # Predict and encode are answered before the middleware stack and the router; every
        # request, those two included, is counted and timed first.
        return HttpMetrics(PredictLane(super().build_middleware_stack()))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    app = TrainyardAPI(
        title="Trainyard",
        version=API_VERSION,
        description="Train and serve deep-learning models over HTTP.",
    )
    engine = create_db_engine(settings.effective_database_url)
    store = Store.from_settings(settings)
    app.state.settings = settings
    app.state.db_engine = engine
    app.state.session_factory = create_session_factory(engine)
    app.state.store = store
    app.state.queue = JobQueue(create_celery(settings))
    app.state.events = create_event_bus(settings)
    app.state.model_cache = ModelCache(
        store,
        budget_bytes=settings.model_cache_mb * 2**20,
        max_batch=settings.predict_max_batch,
        max_wait_ms=settings.predict_max_wait_ms,
    )
    app.state.serving = ServingService(app.state.session_factory, app.state.model_cache, settings)
    app.state.key_owners = RecentLookups(settings.lookup_cache_seconds)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
    app.state.metrics_registry = metrics_registry(app, settings)

    install_error_handlers(app)
    app.include_router(predict_router)
    app.include_router(health_router)
    app.include_router(keys_router)
    app.include_router(projects_router)
    app.include_router(datasets_router)
    app.include_router(jobs_router)
    # Before the models router: its catch-all `GET /{ref}` must not shadow this POST.
    app.include_router(batch_submit_router)
    app.include_router(evaluation_model_router)
    app.include_router(models_router)
    app.include_router(batch_predictions_router)
    app.include_router(evaluations_router)
    app.include_router(specs_router)
    app.include_router(studies_router)
    app.include_router(workers_router)
    mount_dashboard(app)
    return app


def metrics_registry(app: FastAPI, settings: Settings) -> CollectorRegistry:
    """What `GET /metrics` shows: the processes' metrics, and counts read at scrape time."""

    def counts(repository: LeasedWorkRepository) -> Callable[[], dict[str, int]]:
        def count() -> dict[str, int]:
            with app.state.session_factory() as session:
                return repository.count_by_status(session)

        return count

    queues = {settings.default_queue, *settings.worker_queues.split(",")} - {""}
    return exposition_registry(
        StatusCounts("trainyard_jobs", "Training jobs per state (every project).", counts(jobs)),
        StatusCounts(
            "trainyard_batch_predictions",
            "Batch predictions per state (every project).",
            counts(batch_predictions),
        ),
        QueueDepth(app.state.queue.pending, queues),
    )


def mount_dashboard(app: FastAPI) -> None:
    @app.get("/ui", include_in_schema=False)
    def dashboard() -> RedirectResponse:
        return RedirectResponse("/ui/")

    app.mount("/ui/", StaticFiles(directory=WEB_DIR, html=True), name="ui")
