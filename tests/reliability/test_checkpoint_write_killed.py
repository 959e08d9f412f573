"""A process killed half-way through writing a checkpoint never replaces the latest one: the
store writes under a temporary name and renames it into place only when the write is done."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
import torch

from engine.training.checkpoint import Checkpoint, checkpoint_from_bytes, checkpoint_to_bytes
from service.core.store import Store
from service.jobs.tables import checkpoint_key

pytestmark = pytest.mark.reliability

# Writes a few MB through Store.open_write, says so, then hangs before finishing the block.
WRITER = """
import sys, time
from service.core.store import Store
store = Store(sys.argv[1])
with store.open_write(sys.argv[2]) as fh:
    fh.write(b"\\x00" * 4_000_000)
    fh.flush()
    print("half-written", flush=True)
    time.sleep(60)
    fh.write(b"never")
"""


def _checkpoint(epoch: int) -> Checkpoint:
    return Checkpoint(
        epoch=epoch,
        spec_json="{}",
        model={"weight": torch.full((4, 4), float(epoch))},
        optimizer={},
        schedule={},
        rng={},
        best_loss=1.0,
        best_epoch=epoch,
        best_metrics={},
        best_model=None,
        stopped_early=False,
    )


def test_a_checkpoint_write_killed_half_way_leaves_the_latest_checkpoint_intact(
    tmp_path,
) -> None:
    store = Store((tmp_path / "store").as_uri())
    key = checkpoint_key("job_killedmidwrite")
    store.write_bytes(key, checkpoint_to_bytes(_checkpoint(epoch=7)))

    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, store.url, key], stdout=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout.readline().strip() == "half-written"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
        writer.stdout.close()

    latest = checkpoint_from_bytes(store.read_bytes(key))
    assert latest.epoch == 7
    assert torch.equal(latest.model["weight"], torch.full((4, 4), 7.0))
    # The half-written bytes are only in a temporary file beside it, never under the key.
    leftovers = [p for p in (tmp_path / "store" / "jobs" / "job_killedmidwrite").iterdir()]
    assert {p.name for p in leftovers} - {"checkpoint.pt"} == {
        p.name for p in leftovers if p.name.startswith(".tmp-")
    }
    # And the next good write still replaces it.
    store.write_bytes(key, checkpoint_to_bytes(_checkpoint(epoch=8)))
    assert checkpoint_from_bytes(store.read_bytes(key)).epoch == 8
