"""bench/gpu_check.sh on a machine without an NVIDIA GPU (this suite's usual one) refuses
plainly, leaving no half-written results behind; on a GPU machine it is the check itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine has a GPU")
def test_without_a_gpu_the_check_refuses_and_writes_nothing(tmp_path: Path) -> None:
    results = tmp_path / "results"

    done = subprocess.run(
        ["bash", str(ROOT / "bench" / "gpu_check.sh")],
        env={"PATH": "/usr/bin:/bin", "RESULTS": str(results)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 2
    assert "run this on a machine with an NVIDIA GPU" in done.stderr
    assert not results.exists()
