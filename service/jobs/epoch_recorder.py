"""A training job's epochs on their way to the database: buffered, and written in one
transaction about once a second, so that thousands of short epochs cost a few writes, not
thousands.

The buffer is flushed at every boundary that matters: the last epoch, a checkpoint (so the
history is never behind the checkpoint a resumed run goes on from), a cancel and a hand-back.
A worker killed between flushes loses at most a second of rows, which its resumed run writes
again from its checkpoint on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engine.training.trainer import EpochReport
from service.core import metrics
from service.jobs.repository import GRAD_NORM_PREFIX

# At most one write of epochs per this many seconds, but the first epoch is written at once.
FLUSH_SECONDS = 1.0


class EpochRecorder:
    def __init__(
        self,
        write: Callable[[list[tuple[int, dict[str, float]]], dict[str, Any]], bool],
        warnings: list[dict[str, Any]],
        flush_seconds: float = FLUSH_SECONDS,
        worker: str | None = None,
    ) -> None:
        # write(history, latest) writes the rows and the job's latest state, fenced by the
        # lease: False when the lease is lost.
        self._write = write
        self.flush_seconds = flush_seconds
        # The worker's training throughput goes to its metrics under this name (`host:pid`).
        self.worker = worker
        # Health warnings so far, each code once: the ones of an earlier attempt stay.
        self.warnings = warnings
        self._known = {w["code"] for w in warnings}
        self._history: list[tuple[int, dict[str, float]]] = []
        self._latest: dict[str, Any] | None = None
        self._flushed_at = -float("inf")
        # Of the latest epoch added: its progress and metrics, and the warnings it raised first.
        self.progress: dict[str, Any] = {}
        self.new_warnings: list[dict[str, Any]] = []
        # When the final model's epochs began: cross-validation folds run before them.
        self.started = time.monotonic()

    def add(self, report: EpochReport) -> bool:
        """Buffer one epoch; write the buffer if it is due. False if the lease is lost."""
        elapsed = time.monotonic() - self.started
        self.new_warnings = []
        for warning in report.warnings:
            if warning["code"] not in self._known:
                self._known.add(warning["code"])
                self.warnings.append(warning)
                self.new_warnings.append(warning)
        self._history.append((report.epoch, epoch_history(report)))
        if self.worker is not None:
            metrics.record_epoch(self.worker, report.samples_per_second, report.seconds)
        progress = {
            "epoch": report.epoch,
            "epochs": report.epochs,
            "samples_per_second": round(report.samples_per_second, 1),
            "eta_seconds": round(elapsed / report.epoch * (report.epochs - report.epoch), 1),
        }
        self._latest = {"metrics": report.metrics, "progress": progress}
        # What the live view shows of this epoch (service/core/events.py).
        self.progress = {**progress, "metrics": report.metrics}
        due = time.monotonic() - self._flushed_at >= self.flush_seconds
        if due or report.epoch == report.epochs:
            return self.flush()
        return True

    def flush(self) -> bool:
        """Write what is buffered (nothing to write is a success). False if the lease is lost."""
        if self._latest is None:
            return True
        latest = {**self._latest, "warnings": list(self.warnings)}
        if not self._write(self._history, latest):
            return False
        self._history, self._latest = [], None
        self._flushed_at = time.monotonic()
        return True

    def restart_clock(self) -> None:
        """The final model's epochs begin now (the folds are done): its ETA counts from here."""
        self.started = time.monotonic()


def epoch_history(report: EpochReport) -> dict[str, float]:
    """What the metrics history keeps for an epoch: the metrics, the learning rate and the
    training-health readings (gradient norm per layer, dead ReLU fraction)."""
    history = {**report.metrics, "learning_rate": report.learning_rate}
    health = report.health or {}
    for layer, norm in (health.get("grad_norm") or {}).items():
        history[f"{GRAD_NORM_PREFIX}{layer}"] = norm
    if health.get("dead_relu_fraction") is not None:
        history["dead_relu_fraction"] = health["dead_relu_fraction"]
    return history
