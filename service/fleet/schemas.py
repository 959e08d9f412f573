from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class WorkerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="host:pid, as the worker's leases name it.")
    hostname: str
    queues: list[str] = Field(description="The queues it listens on.")
    cuda_devices: int
    cuda_memory_bytes: list[int] = Field(description="Each CUDA device's total memory.")
    started_at: datetime
    last_seen_at: datetime


class WorkerList(BaseModel):
    items: list[WorkerOut] = Field(description="The live workers, by id.")
