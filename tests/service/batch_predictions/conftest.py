from __future__ import annotations

from collections.abc import Callable

import pytest

from service.batch_predictions.prediction_run import run_batch_prediction
from tests.conftest import Backend
from tests.service.conftest import worker_resources


@pytest.fixture
def run_batch(backend: Backend) -> Callable[..., str]:
    """Run a queued batch prediction to its end in this process, as a worker would."""
    return lambda batch_id, **kwargs: run_batch_prediction(
        worker_resources(backend), batch_id, **kwargs
    )
