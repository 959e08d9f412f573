"""Data-parallel training on CPU (gloo): ranks agree on every metric, the model learns, a
2-rank checkpoint resumes under torch.distributed.run, and specs that cannot run on several
ranks are refused naming their field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.datasets import make_classification

from engine.errors import SpecMismatch
from engine.spec import Spec, check_resources
from engine.training.checkpoint import checkpoint_from_bytes, checkpoint_to_bytes
from engine.training.distributed import DistributedContext
from engine.training.distributed_rank import RankOutputs, launch_command, write_inputs
from engine.training.recipe import train

ROOT = Path(__file__).resolve().parents[2]
EPOCHS = 6


def _table() -> pa.Table:
    x, y = make_classification(
        n_samples=500, n_features=8, n_informative=5, class_sep=1.5, random_state=0
    )
    return pa.table({**{f"f{i}": x[:, i] for i in range(8)}, "label": y})


def _spec(**training: object) -> Spec:
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "training": {
                "epochs": EPOCHS,
                "batch_size": 64,
                "learning_rate": 0.01,
                "device": "cpu",
                "resources": {"processes": 2},
                **training,
            },
        }
    )


def _rank(rank: int, folder: str) -> None:
    """One rank of the spawned run: trains under the context and leaves its history (and,
    on rank 0, the checkpoint after epoch 3) in `folder`."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=2
    )
    checkpoints = {}
    trained = train(
        _spec(),
        _table(),
        on_checkpoint=lambda c: checkpoints.setdefault(c.epoch, checkpoint_to_bytes(c)),
        checkpoint_interval_seconds=0.0,
        distributed=DistributedContext.from_process_group(),
    )
    Path(folder, f"rank{rank}.json").write_text(json.dumps(trained.fit.history))
    if rank == 0:
        Path(folder, "epoch3.pt").write_bytes(checkpoints[3])
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("spawned")
    mp.start_processes(_rank, args=(str(folder),), nprocs=2, start_method="spawn")
    return folder


def test_every_rank_reports_the_same_epochs(two_ranks: Path) -> None:
    histories = [json.loads((two_ranks / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [entry["epoch"] for entry in histories[0]] == list(range(1, EPOCHS + 1))
    # One all-reduced train loss and the whole validation set on each rank: identical numbers,
    # so early stopping and plateau schedules decide alike everywhere.
    assert histories[0] == histories[1]
    assert histories[0][-1]["val_loss"] < histories[0][0]["val_loss"]


def test_a_two_rank_checkpoint_resumes_under_the_launcher(two_ranks: Path, tmp_path: Path) -> None:
    resume = (two_ranks / "epoch3.pt").read_bytes()
    assert checkpoint_from_bytes(resume).epoch == 3
    write_inputs(tmp_path, _spec(), _table(), resume_from=resume, checkpoint_interval_seconds=0)
    done = subprocess.run(
        launch_command(sys.executable, tmp_path, 2),
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            # Where the dependencies come from a PYTHONPATH (bench/gpu_check.sh), keep it.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outputs = RankOutputs(tmp_path)
    reports = outputs.new_epochs()
    # It goes on after epoch 3, as the uninterrupted run did.
    assert [report.epoch for report in reports] == [4, 5, 6]
    uninterrupted = json.loads((two_ranks / "rank0.json").read_text())
    for report, entry in zip(reports, uninterrupted[3:], strict=True):
        assert report.metrics["val_loss"] == pytest.approx(entry["val_loss"], rel=1e-4)
    assert checkpoint_from_bytes(outputs.new_checkpoint() or b"").epoch == EPOCHS
    model = outputs.model()
    assert {"spec.json", "weights.safetensors", "preprocess.json"} <= set(model.files())
    assert model.report()["evaluation"]["metrics"]["accuracy"] > 0.85
    assert outputs.error() is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"training": {"device": "cpu", "resources": {"gpus": 2}}}, "training.resources.gpus"),
        (
            {"training": {"device": "cuda", "resources": {"gpus": 2, "processes": 2}}},
            "training.resources.processes",
        ),
        (
            {"training": {"resources": {"processes": 2}}, "data": {"split": {"folds": 3}}},
            "data.split.folds",
        ),
        (
            {"training": {"resources": {"processes": 2}}, "model": {"pretrain": {"epochs": 2}}},
            "model.pretrain",
        ),
    ],
)
def test_specs_several_ranks_cannot_run_are_refused(document: dict, field: str) -> None:
    spec = Spec.model_validate({"task": "classification", "target": "label", **document})
    with pytest.raises(SpecMismatch) as refused:
        check_resources(spec)
    assert refused.value.field == field


def test_a_gan_on_several_ranks_is_refused() -> None:
    spec = Spec.model_validate({"task": "generation", "training": {"resources": {"processes": 2}}})
    with pytest.raises(SpecMismatch) as refused:
        check_resources(spec)
    assert refused.value.field == "training.resources.processes"


def test_the_shards_cover_every_row_with_equal_steps() -> None:
    order = torch.randperm(7, generator=torch.Generator().manual_seed(0))
    shards = [DistributedContext(rank, 3).shard(order) for rank in range(3)]
    assert [len(shard) for shard in shards] == [3, 3, 3]
    assert set(np.concatenate([shard.numpy() for shard in shards])) == set(order.tolist())
