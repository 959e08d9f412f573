"""Benchmark: the engine's training loop against hand-written loops and PyTorch Lightning,
and a whole training job through the service against a hand-written loop.

Case `loop` (the engine's loop, in this process):

One process, one task, four contenders doing the same work: 200,000 x 50 rows from
`make_classification` (10 classes, seed 0), 90% trained on and 10% validated on after every
epoch, MLP 50-256-256-10, Adam 1e-3, batch 256. Contenders:
  engine      engine.training.trainer.Trainer.fit
  handwritten tensors sliced by a shuffled index, loss summed on the device
  dataloader  DataLoader(TensorDataset) with shuffle=True
  lightning   lightning.Trainer.fit over DataLoaders (skipped when lightning is absent)

Each contender first runs one untimed warm-up epoch, then `--rounds` timed runs of `--epochs`
epochs, each from a fresh model; rounds interleave the contenders (in a rotating order) so a
noisy neighbour slows them alike, and each contender's best round counts (the engine /
handwritten ratio of each round is printed too). sps = trained rows per second, with the
per-epoch validation inside the time, as it is for every contender.

Case `small-epochs` (many short epochs, the common case of small tabular and time-series
data): `trainyard run` (the embedded default: SQLite, a folder broker, one API and one worker
process) trains a 200-row NPZ set of noisy sine waves (64 steps, 1 channel, 2 classes) with an
FCN of three conv1d blocks (filters 16, 32, 32), batch 16, Adam 1e-3, no early stopping, for
`--small-epochs` epochs (1000). Timed by the service's own clock, from the job's `created_at`
(the submit) to its `finished_at` (succeeded), after one warm-up job; the bench polls twice a
second, as a watching client would (polling flat out would time the API answering the bench,
on a 2-core machine the training worker's cores). The peer, in this process: the same model
(built by the engine from the job's resolved spec, so the same weights count), optimizer and
batch over tensors with the job's own train and validation row counts, sliced by a shuffled
index, with a validation pass read to the host once an epoch. Service and peer alternate,
`--rounds` times; medians count. `service_vs_handwritten` = peer seconds / service seconds
(1.0 = parity).

Case `ddp` (data-parallel on CPU, gloo; not in the default cases): the engine's recipe on
`--ddp-rows` rows x 256 features of `make_classification` (10 classes), MLP 256-2048-2048-10
(4.7M parameters, so compute outweighs the gradient all-reduce), Adam 1e-3, global batch 512,
no early stopping, `--epochs` epochs. Two processes under torch.distributed.run (the rank
program a worker launches, engine/training/distributed_rank.py), one thread each, against one
process with two threads in this process, the same global batch. sps is the mean of the
epochs' own samples per second after the first (a warm-up); `ddp_2proc_vs_1proc` = 2-process
sps / 1-process sps. `distributed_launch_overhead_s` = wall seconds of a tiny job (64 rows,
one epoch) through the launcher minus the same job in this process: the price of starting the
launcher and its ranks, importing torch in each and meeting at the rendezvous. With
`--device cuda` (two GPUs or more: bench/gpu_check.sh), one process on one GPU against two
ranks on two GPUs (nccl).

    .venv/bin/python -m bench.train_loop [--cases loop,small-epochs,ddp] [--rows 200000]
        [--epochs 5] [--rounds 3] [--small-epochs 1000] [--ddp-rows 40000]

The last line is JSON: {"engine_sps", "handwritten_sps", "dataloader_sps", "lightning_sps",
"engine_vs_handwritten", "engine_vs_lightning", "device", ..., "service_vs_handwritten",
"small_epochs": {...}, "ddp_2proc_vs_1proc", "ddp": {...}, "distributed_launch_overhead_s"}
(the fields of the cases that ran).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# Runnable as a script from anywhere, as well as with `python -m bench.train_loop`.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from client import Client, Job  # noqa: E402
from engine.models import build_model  # noqa: E402
from engine.spec import Spec  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402
from tests.e2e.fleet import free_port, service_env, stop, trainyard, wait_until_ready  # noqa: E402
from tests.sample_data import noisy_sine_sequences, npz_bytes  # noqa: E402

BATCH = 256
LEARNING_RATE = 1e-3
EVAL_BATCH = 8192

Data = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def make_data(rows: int, device: torch.device) -> Data:
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=rows,
        n_features=50,
        n_informative=20,
        n_redundant=10,
        n_classes=10,
        random_state=0,
    )
    x = torch.from_numpy(x.astype(np.float32))
    y = torch.from_numpy(y.astype(np.int64))
    cut = int(rows * 0.9)
    return tuple(t.to(device) for t in (x[:cut], y[:cut], x[cut:], y[cut:]))


def make_model(device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(50, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 10)
    ).to(device)


def run_engine(data: Data, epochs: int, device: torch.device) -> None:
    spec = Spec.model_validate(
        {
            "task": "classification",
            "target": "label",
            "model": {"family": "mlp", "hidden": [256, 256], "dropout": 0.0},
            "training": {
                "epochs": epochs,
                "batch_size": BATCH,
                "optimizer": "adam",
                "learning_rate": LEARNING_RATE,
                "early_stopping": None,
                "device": device.type,
                # The hand-written loops' fp32 math ("auto" is bf16 autocast on CUDA).
                "precision": "fp32",
            },
        }
    )
    Trainer(spec, make_model(device), device).fit(*data)


def run_handwritten(data: Data, epochs: int, device: torch.device) -> None:
    x, y, x_val, y_val = data
    model = make_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)
    n = x.shape[0]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for start in range(0, n, BATCH):
            index = order[start : start + BATCH]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * index.shape[0]
        validation = _validate(model, x_val, y_val)
        (loss_sum / n).item(), validation.tolist()


def run_dataloader(data: Data, epochs: int, device: torch.device) -> None:
    x, y, x_val, y_val = data
    model = make_model(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    for _ in range(epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * xb.shape[0]
        validation = _validate(model, x_val, y_val)
        (loss_sum / x.shape[0]).item(), validation.tolist()


@torch.inference_mode()
def _validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    model.eval()
    sums = torch.zeros(2, device=x.device)
    for start in range(0, x.shape[0], EVAL_BATCH):
        output = model(x[start : start + EVAL_BATCH])
        target = y[start : start + EVAL_BATCH]
        sums[0] += F.cross_entropy(output, target, reduction="sum")
        sums[1] += (output.argmax(1) == target).sum()
    return sums / x.shape[0]


def run_lightning(data: Data, epochs: int, device: torch.device) -> None:
    import lightning as L

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = make_model(device)

        def training_step(self, batch, batch_index):
            x, y = batch
            return F.cross_entropy(self.model(x), y)

        def validation_step(self, batch, batch_index):
            x, y = batch
            output = self.model(x)
            self.log("val_loss", F.cross_entropy(output, y))
            self.log("val_accuracy", (output.argmax(1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=LEARNING_RATE)

    x, y, x_val, y_val = data
    train = DataLoader(
        TensorDataset(x, y),
        batch_size=BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    validation = DataLoader(TensorDataset(x_val, y_val), batch_size=EVAL_BATCH)
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="gpu" if device.type == "cuda" else "cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Module(), train, validation)


def lightning_available() -> bool:
    try:
        import lightning  # noqa: F401
    except ImportError:
        return False
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    return True


def timed(run: Callable[[Data, int, torch.device], None], *args) -> float:
    device = args[2]
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    run(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - started


SMALL_ROWS = 200
SMALL_STEPS = 64
SMALL_BATCH = 16
SMALL_FILTERS = [16, 32, 32]
SMALL_KEY = "ty_bench_" + "s" * 24


def small_epochs_spec(epochs: int) -> dict[str, Any]:
    return {
        "task": "classification",
        "target": "y",
        "model": {"family": "cnn", "filters": SMALL_FILTERS},
        "training": {
            "epochs": epochs,
            "batch_size": SMALL_BATCH,
            "optimizer": "adam",
            "learning_rate": LEARNING_RATE,
            "early_stopping": None,
            "device": "cpu",
        },
    }


def time_service_job(client: Client, dataset_id: str, epochs: int) -> tuple[float, Job]:
    """Seconds from the submit to the job's success, by the service's own clock (created_at
    to finished_at). The job is polled only twice a second, as a client watching it would:
    polling as fast as possible would time the API's answers to this bench, which on a small
    machine take the training worker's cores."""
    job = client.create_job(dataset_id, small_epochs_spec(epochs))
    while (job := client.get_job(job["id"]))["status"] in ("queued", "running"):
        time.sleep(0.5)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["epoch"] == epochs, job["progress"]
    return (job.finished_at - job.created_at).total_seconds(), job


def run_handwritten_small(
    spec: dict, arrays: dict[str, np.ndarray], rows: dict[str, int], epochs: int
) -> tuple[float, int]:
    """(seconds, parameters) of the hand-written loop: same model, optimizer, batch, epochs
    and row counts as the job, per-epoch validation read once."""
    x = torch.from_numpy((arrays["x"] - arrays["x"].mean()) / arrays["x"].std())
    y = torch.from_numpy(arrays["y"])
    n_train, n_val = rows["train"], rows["validation"]
    x_train, y_train = x[:n_train], y[:n_train]
    x_val, y_val = x[n_train : n_train + n_val], y[n_train : n_train + n_val]
    started = time.perf_counter()
    torch.manual_seed(0)
    model = build_model(Spec.model_validate(spec), (SMALL_STEPS, 1), 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator)
        loss_sum = torch.zeros(())
        for start in range(0, n_train, SMALL_BATCH):
            index = order[start : start + SMALL_BATCH]
            loss = F.cross_entropy(model(x_train[index]), y_train[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * index.shape[0]
        validation = _validate(model, x_val, y_val)
        torch.cat([(loss_sum / n_train).view(1), validation]).tolist()
    seconds = time.perf_counter() - started
    return seconds, sum(p.numel() for p in model.parameters())


def small_epochs_case(epochs: int, rounds: int) -> dict[str, Any]:
    arrays = noisy_sine_sequences(SMALL_ROWS, SMALL_STEPS)
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as scratch:
        port = free_port()
        env = service_env(
            Path(scratch) / "data", port, SMALL_KEY, max_epochs=str(max(1000, epochs))
        )
        run = trainyard("run", env=env, log=Path(scratch) / "run.log")
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_ready(base_url, [run])
            with Client(base_url, SMALL_KEY) as client:
                dataset = client.upload_dataset(npz_bytes(**arrays), "sines.npz")
                time_service_job(client, dataset["id"], 5)  # warm-up: the worker is up
                service_s, peer_s = [], []
                for round_index in range(rounds):
                    seconds, job = time_service_job(client, dataset["id"], epochs)
                    service_s.append(seconds)
                    rows = job["report"]["rows"]
                    resolved = {**job["spec"], "model": small_epochs_spec(epochs)["model"]}
                    seconds, parameters = run_handwritten_small(resolved, arrays, rows, epochs)
                    peer_s.append(seconds)
                    print(
                        f"round {round_index + 1} small-epochs: service {service_s[-1]:.2f}s, "
                        f"handwritten {peer_s[-1]:.2f}s "
                        f"({peer_s[-1] / service_s[-1]:.3f})",
                        flush=True,
                    )
        finally:
            stop(run)
    service, peer = statistics.median(service_s), statistics.median(peer_s)
    return {
        "service_vs_handwritten": round(peer / service, 3),
        "small_epochs": {
            "service_s": round(service, 3),
            "handwritten_s": round(peer, 3),
            "service_s_per_round": [round(v, 3) for v in service_s],
            "handwritten_s_per_round": [round(v, 3) for v in peer_s],
            "service_ms_per_epoch": round(service / epochs * 1000, 2),
            "handwritten_ms_per_epoch": round(peer / epochs * 1000, 2),
            "overhead_ms_per_epoch": round((service - peer) / epochs * 1000, 2),
            "epochs": epochs,
            "rows": rows,
            "parameters": parameters,
            # The worker's torch uses every core, as this process does.
            "threads": torch.get_num_threads(),
        },
    }


def loop_case(args: argparse.Namespace) -> dict[str, Any]:
    use_cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    data = make_data(args.rows, device)
    trained_rows = data[0].shape[0] * args.epochs

    contenders = {
        "engine": run_engine,
        "handwritten": run_handwritten,
        "dataloader": run_dataloader,
        "lightning": run_lightning,
    }
    if "lightning" not in args.skip and not lightning_available():
        print("lightning is not installed: skipping it", file=sys.stderr)
        args.skip.append("lightning")
    contenders = {k: v for k, v in contenders.items() if k not in args.skip}

    for name, run in contenders.items():
        seconds = timed(run, data, 1, device)
        print(f"warm-up {name}: {seconds:.2f}s for 1 epoch", flush=True)
    best: dict[str, float] = {}
    round_ratios: list[float] = []  # engine / handwritten within a round: neighbours in time
    names = list(contenders)
    for round_index in range(args.rounds):
        order = names[round_index % len(names) :] + names[: round_index % len(names)]
        this_round: dict[str, float] = {}
        for name in order:
            sps = trained_rows / timed(contenders[name], data, args.epochs, device)
            this_round[name] = sps
            best[name] = max(best.get(name, 0.0), sps)
            print(f"round {round_index + 1} {name}: {sps:,.0f} samples/s", flush=True)
        if "engine" in this_round and "handwritten" in this_round:
            round_ratios.append(this_round["engine"] / this_round["handwritten"])

    def ratio(a: str, b: str) -> float | None:
        return round(best[a] / best[b], 3) if a in best and b in best else None

    summary = {
        "engine_sps": round(best.get("engine", 0.0)),
        "handwritten_sps": round(best.get("handwritten", 0.0)),
        "dataloader_sps": round(best.get("dataloader", 0.0)),
        "lightning_sps": round(best["lightning"]) if "lightning" in best else None,
        "engine_vs_handwritten": ratio("engine", "handwritten"),
        "engine_vs_lightning": ratio("engine", "lightning"),
        "engine_vs_handwritten_per_round": [round(r, 3) for r in round_ratios],
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "rows": args.rows,
        "epochs": args.epochs,
        "rounds": args.rounds,
        "torch": torch.__version__,
    }
    return summary


DDP_FEATURES, DDP_HIDDEN, DDP_BATCH = 256, [2048, 2048], 512


def ddp_spec(
    epochs: int, processes: int, hidden: list[int] = DDP_HIDDEN, device: str = "cpu"
) -> Spec:
    """On CPU `processes` gloo ranks; on CUDA one rank per GPU (one rank: in-process)."""
    resources = {"processes": processes} if device == "cpu" else {"gpus": processes}
    return Spec.model_validate(
        {
            "task": "classification",
            "target": "y",
            "model": {"family": "mlp", "hidden": hidden, "dropout": 0.0},
            # No test split: scoring it (permutation importance over 256 inputs) is no part
            # of what is timed, and would only make the bench slower.
            "data": {"split": {"validation": 0.1, "test": 0.0}},
            "training": {
                "epochs": epochs,
                "batch_size": DDP_BATCH,
                "learning_rate": LEARNING_RATE,
                "early_stopping": None,
                "device": device,
                "resources": resources if processes > 1 else {},
            },
        }
    )


def ddp_data(rows: int, features: int = DDP_FEATURES) -> Any:
    from sklearn.datasets import make_classification

    from engine.data.arrays.dataset import ArrayData

    x, y = make_classification(
        n_samples=rows,
        n_features=features,
        n_informative=min(40, features - 2),
        n_redundant=0,
        n_classes=10 if features > 8 else 2,
        random_state=0,
    )
    classes = list(range(int(y.max()) + 1))
    return ArrayData(x.astype(np.float32), y.astype(np.int64), classes, "vector")


def run_in_process(spec: Spec, data: Any, threads: int) -> tuple[list[float], float]:
    """(each epoch's samples per second, wall seconds) of the recipe in this process."""
    from engine.training.recipe import train

    torch.set_num_threads(threads)
    speeds: list[float] = []
    started = time.perf_counter()
    train(spec, data, on_epoch=lambda report: speeds.append(report.samples_per_second))
    return speeds, time.perf_counter() - started


def run_launched(spec: Spec, data: Any, processes: int) -> tuple[list[float], float]:
    """The same through torch.distributed.run, one thread a rank, as a worker launches it."""
    import os
    import subprocess

    from engine.training.distributed_rank import RankOutputs, launch_command, write_inputs

    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        write_inputs(workdir, spec, data)
        root = str(Path(__file__).resolve().parents[1])
        # Where the dependencies come from a PYTHONPATH (bench/gpu_check.sh), keep it.
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
        started = time.perf_counter()
        subprocess.run(launch_command(sys.executable, workdir, processes), env=env, check=True)
        seconds = time.perf_counter() - started
        speeds = [report.samples_per_second for report in RankOutputs(workdir).new_epochs()]
    return speeds, seconds


def ddp_case(args: argparse.Namespace) -> dict[str, Any]:
    # On CUDA (bench/gpu_check.sh, two GPUs or more): one process on one GPU against two
    # ranks on two GPUs over nccl.
    device = "cuda" if args.device == "cuda" else "cpu"
    data = ddp_data(args.ddp_rows)
    epochs = max(2, args.epochs)
    one, _ = run_in_process(ddp_spec(epochs, 1, device=device), data, threads=2)
    two, _ = run_launched(ddp_spec(epochs, 2, device=device), data, processes=2)
    one_sps, two_sps = statistics.mean(one[1:]), statistics.mean(two[1:])
    tiny = ddp_data(64, features=8)
    _, in_process = run_in_process(ddp_spec(1, 1, [16], device), tiny, threads=2)
    _, launched = run_launched(ddp_spec(1, 2, [16], device), tiny, processes=2)
    ratio = round(two_sps / one_sps, 3)
    overhead = round(launched - in_process, 2)
    print(f"ddp on {device}: 1 process {one_sps:,.0f} sps, 2 processes {two_sps:,.0f}")
    print(f"ddp_2proc_vs_1proc {ratio}; distributed_launch_overhead_s {overhead}")
    return {
        "ddp_2proc_vs_1proc": ratio,
        "distributed_launch_overhead_s": overhead,
        "ddp": {
            "device": device,
            "rows": args.ddp_rows,
            "epochs": epochs,
            "parameters": DDP_FEATURES * 2048 + 2048 * 2048 + 2048 * 10 + 2048 * 2 + 10,
            "one_process_sps": round(one_sps),
            "two_process_sps": round(two_sps),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="loop,small-epochs", help="loop, small-epochs, ddp")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-epochs", type=int, default=1000)
    parser.add_argument("--ddp-rows", type=int, default=40_000)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--skip", nargs="*", default=[], help="contenders to leave out")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    summary: dict[str, Any] = {}
    if "loop" in cases:
        summary |= loop_case(args)
    if "small-epochs" in cases:
        summary |= small_epochs_case(args.small_epochs, args.rounds)
    if "ddp" in cases:
        summary |= ddp_case(args)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
