"""What a worker listens on given its machine, and the fleet table the API reads a waiting
job's reason from: a worker that stops leaves it, one that stops being seen ages out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.cuda_inventory import CudaInventory
from service.core.database import create_session_factory, transaction, utcnow
from service.fleet import service as fleet
from service.fleet.tables import Worker
from tests.conftest import Backend

NO_CUDA = CudaInventory()
ONE_GPU = CudaInventory((80 * 2**30,))
TWO_GPUS = CudaInventory((80 * 2**30, 80 * 2**30))
FOUR_GPUS = CudaInventory((80 * 2**30,) * 4)


def test_the_cuda_queue_is_left_out_without_cuda_and_refused_when_named() -> None:
    assert fleet.queues_to_listen(["cpu", "gpu"], NO_CUDA, explicit=False) == ["cpu"]
    assert fleet.queues_to_listen(["cpu", "gpu"], TWO_GPUS, explicit=True) == [
        "cpu",
        "gpu",
        "gpu2",
    ]
    with pytest.raises(fleet.NoCuda, match="no CUDA device"):
        fleet.queues_to_listen(["gpu"], NO_CUDA, explicit=True)


def test_a_machine_of_n_gpus_also_serves_the_queues_of_jobs_needing_up_to_n() -> None:
    assert fleet.queues_to_listen(["cpu", "gpu"], ONE_GPU, explicit=False) == ["cpu", "gpu"]
    assert fleet.queues_to_listen(["gpu", "cpu"], FOUR_GPUS, explicit=False) == [
        "gpu",
        "cpu",
        "gpu2",
        "gpu3",
        "gpu4",
    ]
    # Named on a machine with too few devices: refused, saying how many it has.
    with pytest.raises(fleet.NoCuda, match="ask for 4 CUDA devices on one machine, and this "):
        fleet.queues_to_listen(["cpu", "gpu4"], TWO_GPUS, explicit=True)
    assert fleet.queues_to_listen(["cpu", "gpu4"], TWO_GPUS, explicit=False) == ["cpu"]


def test_a_multi_gpu_job_waits_saying_how_many_devices_the_fleet_has(backend: Backend) -> None:
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        fleet.register_worker(
            session,
            "one-gpu:1",
            "one-gpu",
            fleet.queues_to_listen(["gpu"], ONE_GPU, False),
            ONE_GPU,
        )
        fleet.register_worker(
            session,
            "two-gpus:2",
            "two-gpus",
            fleet.queues_to_listen(["gpu"], TWO_GPUS, False),
            TWO_GPUS,
        )
    with transaction(factory) as session:
        live = fleet.live_workers(session, backend.settings)
        assert fleet.waiting_reason("gpu", live) is None
        assert fleet.waiting_reason("gpu2", live) is None
        reason = fleet.waiting_reason("gpu4", live)
        assert "asks for 4 CUDA devices on one machine" in reason
        assert "the most any of the 2 live workers has is 2" in reason
        fleet.remove_worker(session, "one-gpu:1")
        fleet.remove_worker(session, "two-gpus:2")


def test_a_job_waits_with_a_reason_only_where_no_live_worker_listens(backend: Backend) -> None:
    factory = create_session_factory(backend.app.state.db_engine)
    with transaction(factory) as session:
        fleet.register_worker(session, "cpu-box:1", "cpu-box", ["cpu"], NO_CUDA)
        fleet.register_worker(session, "gone:2", "gone", ["gpu"], TWO_GPUS)
        session.get(Worker, "gone:2").last_seen_at = utcnow() - timedelta(hours=1)
    with transaction(factory) as session:
        live = fleet.live_workers(session, backend.settings)
        assert [w.id for w in live] == ["cpu-box:1"]
        assert fleet.waiting_reason("cpu", live) is None
        assert "0 of the 1 live workers" in fleet.waiting_reason("gpu", live)
        fleet.touch_worker(session, "gone:2")
    with transaction(factory) as session:
        assert {w.id for w in fleet.live_workers(session, backend.settings)} == {
            "cpu-box:1",
            "gone:2",
        }
        assert fleet.waiting_reason("gpu", fleet.live_workers(session, backend.settings)) is None
        fleet.remove_worker(session, "cpu-box:1")
    with transaction(factory) as session:
        assert [w.id for w in fleet.live_workers(session, backend.settings)] == ["gone:2"]
