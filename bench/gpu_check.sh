#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU, from the repository's root or anywhere.
#
#   bench/gpu_check.sh            # builds .venv first if it is missing (needs PyPI)
#   PYTHON=python3 bench/gpu_check.sh   # a Python that already has torch with CUDA and
#                                       # Trainyard's dependencies
#   WHEELS=.whl PYTHON=python3 bench/gpu_check.sh
#       # a machine that reaches no package index (the device tool's lent GPU machines):
#       # the wheels `.venv/bin/python -m bench.gpu_wheels` gathered into .whl beforehand go
#       # into $SITE (default /tmp/site), at the front of PYTHONPATH. In a device call: carry
#       # [".whl"], RESULTS=$OUT, timeout_s 600; it takes about 4 minutes on one H100.
#
# What it runs, in order, stopping at the first failure:
#   1. the CUDA tests (pytest -m cuda): bf16 autocast over fp32 weights, the data's one pinned
#      non-blocking copy, CUDA agreeing with the CPU in fp32, and, with two or more GPUs,
#      DistributedDataParallel over NCCL;
#   2. bench/train_loop.py's loop case on CUDA: the engine's loop against a hand-written one
#      on the same GPU, both in fp32 (`engine_vs_handwritten`, target >= 1.0);
#   3. with two or more GPUs, its ddp case on CUDA: samples/s of 2 processes vs 1
#      (`ddp_2proc_vs_1proc`).
# Everything it prints is kept under $RESULTS (default bench/results/gpu_check/), and the
# figures go to $RESULTS/gpu_check.json.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
results="${RESULTS:-bench/results/gpu_check}"

if ! command -v nvidia-smi >/dev/null; then
    echo "gpu_check: no nvidia-smi here; run this on a machine with an NVIDIA GPU" >&2
    exit 2
fi
if [[ -n "${WHEELS:-}" ]]; then
    site="${SITE:-/tmp/site}"
    "${PYTHON:-python3}" -m pip install --quiet --no-index --no-deps --no-compile \
        --no-cache-dir --upgrade --target "$site" "$WHEELS"/*.whl
    export PYTHONPATH="$site:$root${PYTHONPATH:+:$PYTHONPATH}"
fi
if [[ -z "${PYTHON:-}" ]]; then
    [[ -x .venv/bin/python ]] || make .venv/.test bench-deps
    PYTHON=.venv/bin/python
fi
export PYTHONUNBUFFERED=1

gpus="$("$PYTHON" -c 'import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)')"
if [[ "$gpus" == "0" ]]; then
    echo "gpu_check: $PYTHON's torch sees no CUDA device (a CPU build of torch?)" >&2
    "$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' >&2
    exit 2
fi
mkdir -p "$results"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$results/nvidia_smi.csv"

echo "== 1. CUDA tests on $gpus GPU(s)"
# Only the modules that hold CUDA tests are collected, so the test-only dependencies of the
# rest (a browser driver, moto, schemathesis) need not be there. -rA lists every test's
# outcome, so a skip (DDP with a single GPU) shows with its reason.
mapfile -t cuda_modules < <(grep -rl --include='test_*.py' 'pytest.mark.cuda' tests)
"$PYTHON" -m pytest -m cuda -rA -p no:cacheprovider "${cuda_modules[@]}" 2>&1 \
    | tee "$results/cuda_tests.txt"

echo "== 2. the engine's loop against a hand-written one, on CUDA"
"$PYTHON" -m bench.train_loop --cases loop --device cuda --skip lightning 2>&1 \
    | tee "$results/train_loop_cuda.txt"

ddp_line="null"
if [[ "$gpus" -ge 2 ]]; then
    echo "== 3. data-parallel: 2 processes vs 1, NCCL"
    "$PYTHON" -m bench.train_loop --cases ddp --device cuda 2>&1 | tee "$results/ddp_cuda.txt"
    ddp_line="$(tail -n 1 "$results/ddp_cuda.txt")"
else
    echo "== 3. skipped: one GPU here; data-parallel over NCCL needs two"
fi

"$PYTHON" - "$results" "$gpus" "$ddp_line" <<'EOF'
import json
import sys
from pathlib import Path

import torch

results, gpus, ddp_line = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
tests = (results / "cuda_tests.txt").read_text().splitlines()
summary = {
    "device": torch.cuda.get_device_name(),
    "gpus": gpus,
    "torch": torch.__version__,
    "cuda": torch.version.cuda,
    "cuda_tests": tests[-1].strip("= "),
    "loop": json.loads((results / "train_loop_cuda.txt").read_text().splitlines()[-1]),
    "ddp": json.loads(ddp_line),
}
(results / "gpu_check.json").write_text(json.dumps(summary, indent=1) + "\n")
print(json.dumps(summary))
EOF
