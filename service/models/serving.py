"""The predict path, built for requests in other applications' request paths: no database
session per request, no thread held while waiting, and the answer written straight to JSON.

Which model a reference names is remembered for a moment (service/core/lookups.py; an alias
moved through this process is forgotten at once). The model comes from the in-process cache
and its micro-batcher (service/models/cache.py, batching.py), which runs the forward pass off
the event loop. Only a first request (a key or reference not seen lately, a model not loaded
yet) goes to the database or the store, on a worker thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from sqlalchemy.orm import sessionmaker
from starlette.concurrency import run_in_threadpool

from engine.errors import DataError, InvalidInstances
from engine.explain import InvalidTarget, NotExplainable, explain
from engine.generation import InvalidSampleRequest, Sampler
from service.core.errors import Conflict, InvalidInput, TooLarge, invalid_field
from service.core.lookups import RecentLookups
from service.core.settings import Settings
from service.models.cache import ModelCache
from service.models.service import resolve_model_ref


class ServingService:
    def __init__(self, session_factory: sessionmaker, cache: ModelCache, settings: Settings):
        self.session_factory = session_factory
        self.cache = cache
        self.max_rows = settings.max_predict_rows
        # (project id, reference) -> model id
        self.refs: RecentLookups[tuple[str, str], str] = RecentLookups(
            settings.lookup_cache_seconds
        )

    async def predict(self, project_id: str, ref: str, instances: list[Any]) -> bytes:
        """`{"model_id", "predictions"}` as JSON: one prediction per instance, in order."""
        model_id = await self.model_id(project_id, ref)
        self._check_rows(instances)
        batcher = self.cache.loaded_batcher(model_id) or await run_in_threadpool(
            self.cache.batcher, model_id
        )
        if batcher.predictor.spec.task == "generation":
            raise not_a_predictor(model_id)
        with instance_errors():
            # Concurrent requests for this model share forward passes.
            predictions = await batcher.predict_async(instances)
        return to_json({"model_id": model_id, "predictions": predictions})

    async def encode(self, project_id: str, ref: str, instances: list[Any]) -> bytes:
        """`{"model_id", "embeddings"}` from an autoencoder's encoder, one per instance."""
        model_id = await self.model_id(project_id, ref)
        self._check_rows(instances)
        predictor = await run_in_threadpool(self.cache.get, model_id)
        if predictor.spec.task == "generation":
            raise not_a_predictor(model_id)
        if not predictor.can_encode:
            raise Conflict(
                f"model {model_id!r} has no encoder; embeddings come from autoencoder models",
                details={"family": predictor.spec.model.family if predictor.spec.model else None},
            )
        with instance_errors():
            embeddings = await run_in_threadpool(predictor.encode, instances)
        return to_json({"model_id": model_id, "embeddings": embeddings})

    async def explain(
        self, project_id: str, ref: str, instances: list[Any], target: Any, n_steps: int
    ) -> dict[str, Any]:
        """Integrated-gradients attributions per instance (engine/explain.py), off the event
        loop: a gradient pass per step is far dearer than a predict."""
        model_id = await self.model_id(project_id, ref)
        predictor = await run_in_threadpool(self.cache.get, model_id)
        try:
            with instance_errors():
                answer = await run_in_threadpool(explain, predictor, instances, target, n_steps)
        except NotExplainable as exc:
            raise Conflict(f"model {model_id!r}: {exc.message}", code=exc.code) from exc
        except InvalidTarget as exc:
            raise invalid_field(exc.field, exc.reason, code=exc.code) from exc
        return {"model_id": model_id, **answer}

    async def sample(
        self, project_id: str, ref: str, n: int, seed: int | None, label: Any
    ) -> dict[str, Any]:
        """`n` seeded examples from a GAN's generator: raw rows, or PNG images."""
        model_id = await self.model_id(project_id, ref)
        predictor = await run_in_threadpool(self.cache.get, model_id)
        if predictor.spec.task != "generation":
            raise Conflict(
                f"model {model_id!r} is a {predictor.spec.task} model; samples come from "
                "task generation models (a GAN)",
                code="not_a_generator",
                details={"task": predictor.spec.task},
            )
        sampler = Sampler(predictor.spec, predictor.pipeline, predictor.model)
        seed = secrets.randbelow(2**32) if seed is None else seed
        try:
            made = await run_in_threadpool(sampler.sample, n, seed, label)
        except InvalidSampleRequest as exc:
            raise invalid_field(exc.field, exc.reason, code="invalid_sample") from exc
        return {
            "model_id": model_id,
            "kind": sampler.kind,
            "n": n,
            "seed": seed,
            "label": label,
            sampler.kind: made,
        }

    async def model_id(self, project_id: str, ref: str) -> str:
        """The model the reference names now (404 when none)."""
        return await self.refs.remembered(
            (project_id, ref), lambda: run_in_threadpool(self._find_model_id, project_id, ref)
        )

    def _find_model_id(self, project_id: str, ref: str) -> str:
        with self.session_factory() as session:
            return resolve_model_ref(session, project_id, ref).id

    def _check_rows(self, instances: list[Any]) -> None:
        if len(instances) > self.max_rows:
            raise TooLarge(
                f"instances: {len(instances)} rows is over the limit of {self.max_rows}",
                details=[{"field": "instances", "limit": self.max_rows}],
            )


def not_a_predictor(model_id: str) -> Conflict:
    return Conflict(
        f"model {model_id!r} is a generator (task generation): it predicts nothing; "
        "POST /v1/models/{ref}/sample makes rows or images",
        code="not_a_predictor",
    )


def to_json(content: dict[str, Any]) -> bytes:
    # NaN and infinities become null, as the response schemas' pydantic would write them.
    return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


@contextmanager
def instance_errors() -> Iterator[None]:
    try:
        yield
    except InvalidInstances as exc:
        raise InvalidInput(exc.message, code="invalid_instances", details=exc.problems) from exc
    except DataError as exc:
        raise invalid_field("instances", exc.message, code="invalid_instances") from exc
