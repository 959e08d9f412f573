from __future__ import annotations

from collections.abc import Callable

import pytest

from service.evaluations.evaluation_run import run_evaluation
from tests.conftest import Backend
from tests.service.conftest import worker_resources


@pytest.fixture
def run_eval(backend: Backend) -> Callable[[str], str]:
    """Run a queued evaluation to its end in this process, as a worker would."""
    return lambda evaluation_id: run_evaluation(worker_resources(backend), evaluation_id)
