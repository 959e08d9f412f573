"""bench/gpu_check.sh on a machine without an NVIDIA GPU (this suite's usual one) refuses
plainly, leaving no half-written results behind; on a GPU machine it is the check itself.
bench/gpu_wheels.py gathers what a GPU machine without a package index lacks."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from bench.gpu_wheels import IMAGE_COMPILED, canonical, wheels_to_carry

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


def test_the_wheels_for_a_gpu_machine_cover_every_dependency_but_the_images_own() -> None:
    carried = {
        canonical(pin.split("==")[0]): pin.split("==")[1] for pin in wheels_to_carry("3.12.3")
    }
    # The service's own dependencies travel, at the versions the tests ran with here.
    for name in ("pydantic", "pydantic-core", "fastapi", "sqlalchemy", "celery", "optuna"):
        assert carried[name] == metadata.version(name)
    # The GPU machine's CUDA torch and its compiled scientific stack are never shadowed.
    assert not {"torch", "numpy", "scipy", "scikit-learn", "pyarrow"} & set(carried)
    for line in metadata.requires("trainyard") or []:
        requirement = Requirement(line)
        name = canonical(requirement.name)
        if requirement.marker is None and name != "torch":
            assert name in carried or name in IMAGE_COMPILED, name
