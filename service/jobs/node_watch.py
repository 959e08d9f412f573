"""The first node's watch over the other nodes of its attempt (`training.resources.nodes`),
polled while its ranks run:

- a join task that no worker has taken is sent again, every quarter of the rendezvous
  timeout, in case the broker lost it (a second delivery finds the slot taken: harmless);
- a joined node whose worker stops renewing its slot's lease fails the attempt at once,
  rather than when the ranks' collectives or the rendezvous time out (minutes), so the job
  goes back to the queue and resumes from its checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from service.core.database import transaction
from service.core.leased_run import WorkerResources
from service.core.queue import JOIN_JOB_TASK
from service.jobs.repository import slots

log = logging.getLogger(__name__)


class NodeWatch:
    POLL_SECONDS = 1.0

    def __init__(
        self,
        resources: WorkerResources,
        job_id: str,
        attempt: int,
        queue: str,
        slot_ids: list[str],
        publish: Callable[[dict[str, Any]], None],
    ) -> None:
        self.resources = resources
        self.job_id = job_id
        self.attempt = attempt
        self.queue = queue
        self.publish = publish
        self.resend_seconds = resources.settings.rendezvous_timeout_seconds / 4
        self.sent_at = {slot_id: time.monotonic() for slot_id in slot_ids}
        self.polled_at = time.monotonic()

    def failure(self) -> str | None:
        """Why the attempt cannot go on (a node lost), or None; polls at most once a second."""
        now = time.monotonic()
        if now - self.polled_at < self.POLL_SECONDS:
            return None
        self.polled_at = now
        try:
            with transaction(self.resources.session_factory) as session:
                lapsed = slots.lapsed(session, self.job_id, self.attempt)
                unclaimed = slots.unclaimed(session, self.job_id, self.attempt)
        except Exception:
            log.warning("job %s: the database did not answer", self.job_id, exc_info=True)
            return None
        if lapsed:
            slot = lapsed[0]
            return (
                f"node {slot.node_rank} (worker {slot.worker_id}) stopped renewing its slot: "
                "its worker died, or lost the database"
            )
        for slot in unclaimed:
            if now - self.sent_at.get(slot.id, now) >= self.resend_seconds:
                self.resources.queue.enqueue(JOIN_JOB_TASK, slot.id, self.queue)
                self.sent_at[slot.id] = now
                message = f"no worker has joined as node {slot.node_rank} yet: asked again"
                log.info("job %s: %s", self.job_id, message)
                self.publish({"message": message})
        return None
