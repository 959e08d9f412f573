from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from service.core.database import Base, UTCDateTime, utcnow

# The longest `Idempotency-Key` accepted (a UUID is 36; room for a client's own scheme).
MAX_KEY_LENGTH = 200


class IdempotencyKey(Base):
    """A client's `Idempotency-Key` and the resource its first request created.

    The unique constraint is what makes a key idempotent under concurrency: of two requests
    racing with one key, only one can insert this row, and the other returns its resource."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("project_id", "kind", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    # What the key created: "job", "dataset" or "batch_prediction". A key may be used once
    # per kind.
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH))
    # Not a foreign key: it points at a job, a dataset or a batch prediction, by kind.
    resource_id: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
