"""Batch prediction queries: all of them the leased-work kernel's (service/core/leases.py)."""

from __future__ import annotations

from service.batch_predictions.tables import BatchPrediction
from service.core.leases import LeasedWorkRepository

batch_predictions = LeasedWorkRepository(BatchPrediction, "batch prediction")
