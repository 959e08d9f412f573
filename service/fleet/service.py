"""The fleet as workers advertise it: each worker process records the queues it listens on
and its machine's CUDA devices when it starts, is seen again on every reconciler pass, and
leaves when it stops. What the API makes of it: why a queued job is still waiting."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from engine.cuda_inventory import CudaInventory
from service.core.database import utcnow
from service.core.queue import GPU_QUEUE, gpu_queue, gpus_of_queue
from service.core.settings import Settings
from service.fleet.tables import Worker

# A worker not seen for this many leases is taken for gone (it is seen every half lease).
LIVE_FOR_LEASES = 2


class NoCuda(ValueError):
    """A worker was asked to listen on the CUDA queue on a machine without CUDA."""


def queues_to_listen(
    requested: Iterable[str], inventory: CudaInventory, explicit: bool
) -> list[str]:
    """The queues a worker listens on: those asked for, less the CUDA queues its machine
    cannot serve (a worker that took a job needing more CUDA devices than it has could only
    fail it). Asked for by name (`explicit`), that is an error instead of a silent drop. With
    the `gpu` queue, a machine of N devices also listens on gpu2 ... gpuN, the queues of jobs
    that need that many on one machine (service/core/queue.py's `gpu_queue`)."""
    queues = [q for q in dict.fromkeys(q.strip() for q in requested) if q]
    too_big = [q for q in queues if gpus_of_queue(q) > inventory.devices]
    if too_big and explicit:
        needed = gpus_of_queue(too_big[0])
        has = f"has {inventory.devices}" if inventory.devices else "has no CUDA device"
        raise NoCuda(
            f"queue {too_big[0]!r} is for jobs that ask for {needed} CUDA device"
            f"{'s' if needed > 1 else ''} on one machine, and this machine {has}"
        )
    queues = [q for q in queues if q not in too_big]
    if GPU_QUEUE in queues:
        queues += [gpu_queue(n) for n in range(2, inventory.devices + 1)]
    return list(dict.fromkeys(queues))


def register_worker(
    session: Session, worker_id: str, hostname: str, queues: list[str], inventory: CudaInventory
) -> Worker:
    worker = session.get(Worker, worker_id) or Worker(id=worker_id)
    worker.hostname = hostname
    worker.queues = queues
    worker.cuda_devices = inventory.devices
    worker.cuda_memory_bytes = list(inventory.memory_bytes)
    worker.started_at = worker.last_seen_at = utcnow()
    session.add(worker)
    session.flush()
    return worker


def touch_worker(session: Session, worker_id: str) -> None:
    session.execute(update(Worker).where(Worker.id == worker_id).values(last_seen_at=utcnow()))


def remove_worker(session: Session, worker_id: str) -> None:
    session.execute(delete(Worker).where(Worker.id == worker_id))


def live_workers(session: Session, settings: Settings) -> list[Worker]:
    since = utcnow() - timedelta(seconds=LIVE_FOR_LEASES * settings.lease_seconds)
    query = select(Worker).where(Worker.last_seen_at >= since).order_by(Worker.id)
    return list(session.scalars(query))


def waiting_reason(queue: str, live: list[Worker]) -> str | None:
    """Why a job queued on `queue` cannot start yet, if no live worker listens there."""
    if any(queue in worker.queues for worker in live):
        return None
    reason = f"no live worker listens on queue {queue!r}; the job starts when one does"
    needed = gpus_of_queue(queue)
    if needed == 1:
        cuda = sum(worker.cuda_devices > 0 for worker in live)
        reason += (
            " (it asks for CUDA: only workers on machines with a CUDA device listen there; "
            f"{cuda} of the {len(live)} live workers have one)"
        )
    elif needed > 1:
        most = max((worker.cuda_devices for worker in live), default=0)
        reason += (
            f" (it asks for {needed} CUDA devices on one machine: only workers on machines "
            f"with at least {needed} listen there; the most any of the {len(live)} live "
            f"workers has is {most})"
        )
    return reason
