"""Dynamic micro-batching: concurrent predict requests for one model share a forward pass.

Each model has one batching thread. A request queues its instances and waits; the thread takes
the first waiting request, gathers the others already queued (and, with `max_wait_ms`, those
that arrive within that time) up to `max_batch` rows, preprocesses them together and runs one
forward pass under `torch.inference_mode`, then hands each request its own rows. With nothing
else waiting a request is served at once, so a lone caller pays no wait.

A batch whose instances do not validate is served again request by request, so each caller
hears of its own mistakes only, with its own row numbers.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from engine.errors import DataError, InvalidInstances
from engine.inference import Predictor
from service.core import metrics


@dataclass
class _Request:
    instances: list[Any]
    # Set on its event loop: a thread-safe concurrent Future, chained to an asyncio one, costs
    # a lone request another lock and another loop iteration on the way back.
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    queued_at: float = 0.0  # time.perf_counter(), for the queue-wait metric

    def answer(self, result: Any = None, error: BaseException | None = None) -> None:
        # RuntimeError: its loop has closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_STOP = object()


class MicroBatcher:
    def __init__(self, predictor: Predictor, max_batch: int, max_wait_ms: float) -> None:
        self.predictor = predictor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self._waiting: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve_forever, daemon=True, name="batcher")
        self._thread.start()

    async def predict_async(self, instances: list[Any]) -> list[dict[str, Any]]:
        """This request's predictions; it waits for them without holding a thread."""
        if len(instances) >= self.max_batch:
            # Already a batch of its own (and split into bounded forward passes).
            metrics.record_predict_batch(len(instances), 1, ())
            return await run_in_threadpool(self.predictor.predict, instances)
        loop = asyncio.get_running_loop()
        request = _Request(instances, loop.create_future(), loop, time.perf_counter())
        self._waiting.put(request)
        return await request.future

    def stop(self) -> None:
        self._waiting.put(_STOP)

    def _serve_forever(self) -> None:
        while (first := self._waiting.get()) is not _STOP:
            batch, rows = [first], len(first.instances)
            deadline = time.monotonic() + self.max_wait
            while rows < self.max_batch:
                try:
                    timeout = deadline - time.monotonic()
                    more = (
                        self._waiting.get(timeout=timeout)
                        if timeout > 0
                        else (self._waiting.get_nowait())
                    )
                except queue.Empty:
                    break
                if more is _STOP:
                    self._waiting.put(_STOP)
                    break
                batch.append(more)
                rows += len(more.instances)
            # A caller that went away (its request was cancelled) gets no rows.
            batch = [r for r in batch if not r.future.cancelled()]
            if batch:
                now = time.perf_counter()
                metrics.record_predict_batch(
                    sum(len(r.instances) for r in batch),
                    len(batch),
                    (now - r.queued_at for r in batch),
                )
                self._serve(batch)

    def _serve(self, batch: list[_Request]) -> None:
        if len(batch) == 1:
            self._serve_alone(batch[0])
            return
        try:
            predictions = self.predictor.predict([i for r in batch for i in r.instances])
        except (InvalidInstances, DataError):
            for request in batch:
                self._serve_alone(request)
            return
        except BaseException as exc:  # every caller hears of it; the thread lives on
            for request in batch:
                request.answer(error=exc)
            return
        start = 0
        for request in batch:
            end = start + len(request.instances)
            request.answer(predictions[start:end])
            start = end

    def _serve_alone(self, request: _Request) -> None:
        try:
            predictions = self.predictor.predict(request.instances)
        except BaseException as exc:
            request.answer(error=exc)
        else:
            request.answer(predictions)
