"""One rank of a data-parallel run, as `torch.distributed.run` starts it, and the work directory
it shares with whoever launched it.

    python -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node N \
        --max-restarts 0 -m engine.training.distributed_rank WORKDIR

(`launch_command` builds that line.) The launcher writes the inputs into WORKDIR
(`write_inputs`): the spec, the dataset and any given validation and test sets (parquet or
the canonical NPZ), a checkpoint to resume from, and the run's settings. Every rank reads them,
joins the process group (gloo on CPU, nccl with one GPU per rank) and runs the same
`engine.training.recipe.train` under a `DistributedContext`. One rank alone reports (rank 0;
on several nodes, the first rank of the node whose worker records the job), through files the
launcher reads as they appear (`RankOutputs`):

    epochs.jsonl              one EpochReport per line, appended as each epoch ends
    checkpoints/epoch-N.pt    the latest checkpoint, written under a temporary name, renamed
    model/<file>              the trained model's files, then result.json (metrics, report)
    error.json                an engine error (its code and message) that ended the run

An epoch's line is written before its checkpoint, so a checkpoint the launcher sees has its
epochs already in epochs.jsonl. The other ranks write nothing. Nothing here is pickled: the
checkpoints are the engine's own format, read with weights_only=True.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist

from engine.data.arrays.dataset import ArrayData, read_arrays, write_arrays
from engine.errors import EngineError, TrainingCancelled
from engine.spec import Spec
from engine.training.checkpoint import Checkpoint, checkpoint_to_bytes
from engine.training.distributed import DistributedContext
from engine.training.preparation import Dataset, GivenSplits
from engine.training.recipe import TrainedModel, train
from engine.training.trainer import EpochReport

SPEC, RUN, RESUME = "spec.json", "run.json", "resume.pt"
EPOCHS, CHECKPOINTS, MODEL, RESULT, ERROR = (
    "epochs.jsonl",
    "checkpoints",
    "model",
    "result.json",
    "error.json",
)
DATA_PARTS = ("data", "validation", "test")
_CHECKPOINT_NAME = re.compile(r"^epoch-(\d{6})\.pt$")
# A rank's exit status when an engine error (bad data, divergence) ended the run: the launcher
# fails the job with the error in error.json instead of trying it again.
ENGINE_ERROR_EXIT = 3


@dataclass(frozen=True)
class Rendezvous:
    """Where the nodes of a run of several nodes meet (torch's c10d rendezvous): the store
    runs on the node that `hosts` it, at `endpoint` (host:port); `run_id` tells one attempt's
    meeting from another's; nodes that have not all arrived within `timeout_seconds` fail."""

    endpoint: str
    run_id: str
    nodes: int
    hosts: bool
    timeout_seconds: int = 300


def launch_command(
    python: str, workdir: Path, ranks: int, rendezvous: Rendezvous | None = None
) -> list[str]:
    """The command line of this node's share of a run: `ranks` processes on WORKDIR, alone
    (standalone) or meeting the other nodes at `rendezvous`."""
    if rendezvous is None:
        meeting = ["--standalone", "--nnodes", "1"]
    else:
        conf = f"is_host={str(rendezvous.hosts).lower()},join_timeout={rendezvous.timeout_seconds}"
        meeting = [
            "--nnodes",
            str(rendezvous.nodes),
            "--rdzv-backend",
            "c10d",
            "--rdzv-endpoint",
            rendezvous.endpoint,
            "--rdzv-id",
            rendezvous.run_id,
            "--rdzv-conf",
            conf,
        ]
    return [
        python,
        "-m",
        "torch.distributed.run",
        *meeting,
        "--nproc-per-node",
        str(ranks),
        # A lost rank fails the attempt; the job resumes from its checkpoint on a new claim.
        "--max-restarts",
        "0",
        "-m",
        __name__,
        str(workdir),
    ]


# --- the launcher's side: inputs in, outputs out --------------------------------------------


def write_inputs(
    workdir: Path,
    spec: Spec,
    data: Dataset,
    given: GivenSplits | None = None,
    resume_from: bytes | None = None,
    checkpoint_interval_seconds: float = 30.0,
    watch_pid: int | None = None,
    reports: bool = True,
) -> None:
    """Everything the ranks read. `watch_pid`: the ranks stop when that process (the
    launcher's parent, a worker) is gone, so a killed worker leaves no ranks training.
    `reports`: this node's first rank reports (the node of the worker that records the job;
    on the others, nothing is written)."""
    (workdir / SPEC).write_text(spec.model_dump_json())
    parts = {"data": data, **_given_parts(given)}
    for name, part in parts.items():
        _write_dataset(workdir, name, part)
    if resume_from is not None:
        (workdir / RESUME).write_bytes(resume_from)
    run = {
        "checkpoint_interval_seconds": checkpoint_interval_seconds,
        "watch_pid": watch_pid,
        "reports": reports,
    }
    (workdir / RUN).write_text(json.dumps(run))


@dataclass
class ModelOutput:
    """A finished run's model as rank 0 left it: what TrainedModel gives a worker to record."""

    model_files: dict[str, bytes]
    metrics: dict[str, float]
    summary: dict[str, Any]

    def files(self) -> dict[str, bytes]:
        return self.model_files

    def report(self) -> dict[str, Any]:
        return self.summary


class RankOutputs:
    """Reads what rank 0 writes, as it appears: new epochs, the latest checkpoint, the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._offset = 0
        self._checkpointed = 0
        self.last_epoch = 0

    def new_epochs(self) -> list[EpochReport]:
        """Epochs written since the last call (whole lines only: one being written waits)."""
        path = self.workdir / EPOCHS
        if not path.exists():
            return []
        with path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        reports = [
            EpochReport(**json.loads(line)) for line in chunk[:end].splitlines() if line.strip()
        ]
        if reports:
            self.last_epoch = reports[-1].epoch
        return reports

    def new_checkpoint(self) -> bytes | None:
        """The latest checkpoint not taken yet whose epochs `new_epochs` has returned, or
        None. Call it after `new_epochs`."""
        folder = self.workdir / CHECKPOINTS
        epochs = [
            int(match.group(1))
            for match in map(_CHECKPOINT_NAME.match, os.listdir(folder) if folder.exists() else [])
            if match
        ]
        ready = [epoch for epoch in epochs if self._checkpointed < epoch <= self.last_epoch]
        if not ready:
            return None
        try:
            content = (folder / _checkpoint_name(max(ready))).read_bytes()
        except FileNotFoundError:  # replaced by a newer one meanwhile: take that next time
            return None
        self._checkpointed = max(ready)
        return content

    def error(self) -> dict[str, str] | None:
        """{"code", "message"} of the engine error that ended the run, if one did."""
        path = self.workdir / ERROR
        return json.loads(path.read_text()) if path.exists() else None

    def model(self) -> ModelOutput:
        result = json.loads((self.workdir / RESULT).read_text())
        folder = self.workdir / MODEL
        files = {path.name: path.read_bytes() for path in sorted(folder.iterdir())}
        return ModelOutput(files, result["metrics"], result["report"])


# --- the rank's side -------------------------------------------------------------------------


class RankReport:
    """Rank 0's callbacks: each writes a file the launcher reads."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        (workdir / CHECKPOINTS).mkdir(exist_ok=True)

    def on_epoch(self, report: EpochReport) -> None:
        with (self.workdir / EPOCHS).open("a") as fh:
            fh.write(json.dumps(dataclasses.asdict(report)) + "\n")

    def on_checkpoint(self, checkpoint: Checkpoint) -> None:
        folder = self.workdir / CHECKPOINTS
        temporary = folder / "checkpoint.tmp"
        temporary.write_bytes(checkpoint_to_bytes(checkpoint))
        name = _checkpoint_name(checkpoint.epoch)
        os.replace(temporary, folder / name)
        for older in os.listdir(folder):
            if _CHECKPOINT_NAME.match(older) and older != name:
                (folder / older).unlink(missing_ok=True)

    def finished(self, trained: TrainedModel) -> None:
        # The model's files first, result.json last: its presence says the model is whole.
        folder = self.workdir / MODEL
        folder.mkdir(exist_ok=True)
        for name, content in trained.files().items():
            (folder / name).write_bytes(content)
        result = {"metrics": trained.metrics, "report": trained.report()}
        _write_atomically(self.workdir / RESULT, json.dumps(result))

    def failed(self, error: EngineError) -> None:
        _write_atomically(
            self.workdir / ERROR, json.dumps({"code": error.code, "message": error.message})
        )


class OrphanCheck:
    """True once the watched process is gone, or this rank's launcher died (the rank was
    handed to another parent): a rank never trains on for nobody. Looks once a second."""

    def __init__(self, watch_pid: int | None) -> None:
        self.watch_pid = watch_pid
        self.parent = os.getppid()
        self._looked_at = time.monotonic()

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self._looked_at < 1.0:
            return False
        self._looked_at = now
        if os.getppid() != self.parent:
            return True
        if self.watch_pid is None:
            return False
        try:
            os.kill(self.watch_pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # alive, another user's
            return False
        return False


def run_rank(workdir: Path, local_rank: int) -> int:
    """This process's rank of the run in `workdir`; its exit status."""
    spec = Spec.model_validate_json((workdir / SPEC).read_text())
    run = json.loads((workdir / RUN).read_text())
    on_gpus = spec.training.resources.gpus > 0
    if on_gpus:
        # Before the process group: nccl binds each rank to the current device.
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if on_gpus else "gloo")
    context = DistributedContext.from_process_group(local_rank)
    # The reporting node's first rank, wherever the rendezvous put global rank 0: every rank
    # holds the same model and metrics, and the worker that records reads this node's files.
    report = RankReport(workdir) if run["reports"] and local_rank == 0 else None
    resume = workdir / RESUME
    try:
        data = _read_dataset(workdir, "data")
        given = GivenSplits(
            **{name: _read_dataset(workdir, name) for name in ("validation", "test")}
        )
        trained = train(
            spec,
            data,
            given=given if given else None,
            on_epoch=report.on_epoch if report else None,
            should_cancel=OrphanCheck(run["watch_pid"]),
            on_checkpoint=report.on_checkpoint if report else None,
            resume_from=resume.read_bytes() if resume.exists() else None,
            checkpoint_interval_seconds=run["checkpoint_interval_seconds"],
            distributed=context,
        )
        if report is not None:
            report.finished(trained)
    except TrainingCancelled:
        return ENGINE_ERROR_EXIT
    except EngineError as error:
        if report is not None:
            report.failed(error)
        return ENGINE_ERROR_EXIT
    finally:
        dist.destroy_process_group()
    return 0


def _checkpoint_name(epoch: int) -> str:
    return f"epoch-{epoch:06d}.pt"


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _given_parts(given: GivenSplits | None) -> dict[str, Dataset]:
    if not given:
        return {}
    parts = {"validation": given.validation, "test": given.test}
    return {name: part for name, part in parts.items() if part is not None}


def _write_dataset(workdir: Path, name: str, data: Dataset) -> None:
    if isinstance(data, ArrayData):
        with (workdir / f"{name}.npz").open("wb") as fh:
            write_arrays(data, fh)
    else:
        pq.write_table(data, workdir / f"{name}.parquet")


def _read_dataset(workdir: Path, name: str) -> Dataset | None:
    if (workdir / f"{name}.npz").exists():
        with (workdir / f"{name}.npz").open("rb") as fh:
            return read_arrays(fh)
    if (workdir / f"{name}.parquet").exists():
        table: pa.Table = pq.read_table(workdir / f"{name}.parquet")
        return table
    return None


if __name__ == "__main__":
    # torch.distributed.run tells each rank its GPU on this node in LOCAL_RANK.
    sys.exit(run_rank(Path(sys.argv[1]), int(os.environ.get("LOCAL_RANK", "0"))))
