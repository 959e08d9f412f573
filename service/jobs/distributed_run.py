"""A data-parallel training run, launched from a worker: `torch.distributed.run` in a
subprocess, watched until it ends.

The worker writes the run's inputs into a private work directory, starts the launcher in a
session of its own (a subprocess, not multiprocessing: a Celery prefork child must not fork
workers of its own, and CUDA is never initialised in the worker), and polls about five times a
second. Epochs rank 0 reports go to the worker's `on_epoch` and checkpoints to its
`on_checkpoint`, the same paths a one-process job takes, so metrics, live events and study
pruning work unchanged. `should_stop` (a cancel, a lost lease, a shutdown, a pruned trial)
stops every rank; a launcher that exits nonzero with no engine error (a rank killed, its
machine out of memory) raises RanksFailed, and the job's attempt fails.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import engine
from engine.errors import EngineError, TrainingCancelled
from engine.spec import Spec
from engine.training.distributed_rank import (
    ModelOutput,
    RankOutputs,
    Rendezvous,
    launch_command,
    write_inputs,
)
from engine.training.preparation import Dataset, GivenSplits
from engine.training.trainer import EpochReport

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
# How long the launcher has to stop its ranks after SIGTERM before they are all killed.
STOP_GRACE_SECONDS = 10.0
LOG_TAIL_CHARS = 2000
# The directory that holds the `engine` package: the ranks import it from there.
PROJECT_ROOT = Path(engine.__file__).resolve().parents[1]


class RanksFailed(Exception):
    """The launcher ended nonzero with no engine error: a rank died. The attempt failed; the
    job can go on from its last checkpoint."""


class RankError(EngineError):
    """An engine error a rank ended the run with (bad data, divergence): the job fails with
    its code, as it would in one process."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def train_distributed(
    spec: Spec,
    data: Dataset,
    given: GivenSplits,
    resume_from: bytes | None,
    checkpoint_interval_seconds: float,
    on_epoch: Callable[[EpochReport], None],
    on_checkpoint: Callable[[bytes], None],
    should_stop: Callable[[], bool],
    rendezvous: Rendezvous | None = None,
    reports: bool = True,
    node_failure: Callable[[], str | None] | None = None,
) -> ModelOutput | None:
    """Train `spec` on `spec.training.resources.ranks` local ranks (this node's share, with
    a `rendezvous` of several nodes); the reporting rank's model, or None on a node that does
    not report. Raises TrainingCancelled once `should_stop` says so (every local rank stopped
    first), RankError for an engine error, RanksFailed for a rank that died (or nodes that
    did not meet, or another node lost: what `node_failure` says, polled as `should_stop`
    is)."""
    ranks = spec.training.resources.ranks
    with tempfile.TemporaryDirectory(prefix="trainyard-ddp-") as folder:
        workdir = Path(folder)
        write_inputs(
            workdir,
            spec,
            data,
            given,
            resume_from=resume_from,
            checkpoint_interval_seconds=checkpoint_interval_seconds,
            watch_pid=os.getpid(),
            reports=reports,
        )
        launcher_log = workdir / "launcher.log"
        with launcher_log.open("wb") as output:
            launcher = subprocess.Popen(
                launch_command(sys.executable, workdir, ranks, rendezvous),
                cwd=workdir,
                env=rank_environment(spec, ranks),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.info("launched %d ranks (launcher pid %d) in %s", ranks, launcher.pid, workdir)
            outputs = RankOutputs(workdir)
            try:
                exit_code = _watch(
                    launcher, outputs, on_epoch, on_checkpoint, should_stop, node_failure
                )
            finally:
                stop_launcher(launcher)
        if exit_code == 0:
            return outputs.model() if reports else None
        error = outputs.error()
        if error is not None:
            raise RankError(error["code"], error["message"])
        output = launcher_log.read_text(errors="replace")
        raise RanksFailed(
            f"torch.distributed.run exited with status {exit_code}: {root_cause(output)}\n"
            f"{output[-LOG_TAIL_CHARS:]}"
        )


def root_cause(output: str) -> str:
    """The launcher's "Root Cause" of a failure, as one line ("rank 1 (local_rank: 1),
    exitcode -9 (pid: 123) (SIGKILL)"), or why the ranks never started."""
    if "RendezvousTimeoutError" in output:
        return "the nodes did not all meet at the rendezvous in time (too few free workers?)"
    _, found, cause = output.rpartition("Root Cause")
    fields = {}
    for line in cause.splitlines() if found else []:
        name, colon, value = line.partition(":")
        if colon and name.strip() in ("rank", "exitcode"):
            fields.setdefault(name.strip(), value.strip())
    if not fields:
        return "no rank failure reported"
    return ", ".join(f"{name} {value}" for name, value in fields.items())


def _watch(
    launcher: subprocess.Popen,
    outputs: RankOutputs,
    on_epoch: Callable[[EpochReport], None],
    on_checkpoint: Callable[[bytes], None],
    should_stop: Callable[[], bool],
    node_failure: Callable[[], str | None] | None = None,
) -> int:
    """Pass on what rank 0 writes until the launcher exits (its status), or stop."""
    while True:
        # Asked before reading, so the files read after the exit are the last ones.
        exit_code = launcher.poll()
        for report in outputs.new_epochs():
            on_epoch(report)
        checkpoint = outputs.new_checkpoint()
        if checkpoint is not None:
            on_checkpoint(checkpoint)
        if exit_code is not None:
            return exit_code
        if should_stop():
            raise TrainingCancelled("the job was stopped")
        failure = node_failure() if node_failure else None
        if failure is not None:
            raise RanksFailed(failure)
        time.sleep(POLL_SECONDS)


def rank_environment(spec: Spec, ranks: int) -> dict[str, str]:
    """The worker's environment for the ranks: the project importable, the CPU's threads
    shared out among CPU ranks (unless the operator set OMP_NUM_THREADS), and no GPU seen by
    CPU ranks; GPU ranks see the worker's own CUDA_VISIBLE_DEVICES, if any."""
    environment = dict(os.environ)
    path = environment.get("PYTHONPATH")
    environment["PYTHONPATH"] = f"{PROJECT_ROOT}{os.pathsep}{path}" if path else str(PROJECT_ROOT)
    environment.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // ranks)))
    if spec.training.resources.gpus == 0:
        environment["CUDA_VISIBLE_DEVICES"] = ""
    return environment


def stop_launcher(launcher: subprocess.Popen) -> None:
    """Stop the launcher and every rank: SIGTERM to the launcher (it stops its ranks), then,
    past the grace, SIGKILL to it and to each rank (the ranks run in sessions of their own,
    so killing the launcher's group does not reach them)."""
    if launcher.poll() is not None:
        return
    ranks = child_pids(launcher.pid)
    _signal_group(launcher.pid, signal.SIGTERM)
    try:
        launcher.wait(STOP_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        log.warning("the launcher %d ignored SIGTERM; killing it and its ranks", launcher.pid)
    for pid in [*ranks, *child_pids(launcher.pid)]:
        _signal_group(pid, signal.SIGKILL)
    _signal_group(launcher.pid, signal.SIGKILL)
    launcher.wait()


def free_port() -> int:
    """A TCP port free on every interface now, for a rendezvous store to listen on."""
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc; none where there is no /proc)."""
    children = []
    for entry in Path("/proc").glob("[0-9]*/stat") if Path("/proc").is_dir() else []:
        try:
            # The command name, in parentheses, may hold spaces: the fields after it are fixed.
            fields = entry.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid:
            children.append(int(entry.parent.name))
    return children


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signum)
