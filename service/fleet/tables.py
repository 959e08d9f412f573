from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, utcnow


class Worker(Base):
    """A worker process as it advertised itself: the queues it listens on and the CUDA
    devices its machine has. `last_seen_at` moves with its reconciler's passes, so a worker
    that died stops counting once it is older than a few of them."""

    __tablename__ = "workers"

    # host:pid, as its leases name it.
    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    queues: Mapped[list[str]] = mapped_column(JSON)
    cuda_devices: Mapped[int] = mapped_column(Integer, default=0)
    # Total memory of each CUDA device, in bytes, in device order.
    cuda_memory_bytes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
