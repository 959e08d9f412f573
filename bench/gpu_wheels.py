"""Gather, here, the wheels that bench/gpu_check.sh needs on a lent GPU machine.

The lent GPU machines (the device tool's nvidia-h100-x1 and nvidia-h200) run an image with
Python 3.12, PyTorch built for CUDA and the scientific stack, but not Trainyard's service
dependencies (pydantic, FastAPI, SQLAlchemy, Celery, ...), and they reach no package index.
This walks Trainyard's runtime dependencies as installed in this Python (the .venv), leaves
out torch and the compiled packages that image already holds, and downloads a wheel of each
of the rest, at the version installed here, built for the target Python:

    .venv/bin/python -m bench.gpu_wheels [--dest .whl] [--python-version 3.12.3]

Then, on the GPU machine, from the repository's root (the folder travels as `carry`):

    WHEELS=.whl PYTHON=python3 bench/gpu_check.sh

Pure-Python packages always travel, even where the image has one, so their versions are the
ones the tests ran with here; they shadow the image's from the front of PYTHONPATH.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# Never carried: the GPU machine's own CUDA build of torch is the point of the check.
TORCH_FAMILY = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")

# Compiled packages the 'cuda' image holds (the device tool's KINDS.md, read 2026-11-17).
# Carrying our build of one would shadow the image's and could break what was built against
# it (scipy and scikit-learn against its numpy, say).
IMAGE_COMPILED = {
    "aiohttp",
    "charset-normalizer",
    "contourpy",
    "cryptography",
    "frozenlist",
    "fonttools",
    "kiwisolver",
    "lxml",
    "markupsafe",
    "matplotlib",
    "ml-dtypes",
    "msgpack",
    "multidict",
    "numpy",
    "onnx",
    "onnxruntime",
    "pandas",
    "pillow",
    "propcache",
    "protobuf",
    "psutil",
    "pyarrow",
    "pyyaml",
    "regex",
    "safetensors",
    "scikit-learn",
    "scipy",
    "tokenizers",
    "uvloop",
    "wrapt",
    "yarl",
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def minor_version(version: str) -> str:
    return ".".join(version.split(".")[:2])


def is_pure(distribution: metadata.Distribution) -> bool:
    wheel = distribution.read_text("WHEEL") or ""
    return "Root-Is-Purelib: true" in wheel


def runtime_closure(root: str, python_version: str) -> dict[str, metadata.Distribution]:
    """Every distribution `root` needs at run time (no extras), as installed here, with the
    markers judged for the target Python on Linux."""
    environment = default_environment()
    environment.update(
        python_version=minor_version(python_version),
        python_full_version=python_version,
        sys_platform="linux",
        platform_system="Linux",
        platform_machine="x86_64",
        implementation_name="cpython",
    )
    found: dict[str, metadata.Distribution] = {}
    seen: set[tuple[str, frozenset[str]]] = set()
    pending = [(canonical(root), frozenset[str]())]
    while pending:
        name, extras = pending.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        distribution = metadata.distribution(name)
        found[name] = distribution
        for line in distribution.requires or []:
            requirement = Requirement(line)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({**environment, "extra": extra})
                for extra in (extras or {""})
            )
            if wanted and not TORCH_FAMILY.match(canonical(requirement.name)):
                pending.append((canonical(requirement.name), frozenset(requirement.extras)))
    del found[canonical(root)]
    return found


def wheels_to_carry(python_version: str) -> list[str]:
    pins = []
    for key, distribution in sorted(runtime_closure("trainyard", python_version).items()):
        if key in IMAGE_COMPILED and not is_pure(distribution):
            continue
        pins.append(f"{distribution.metadata['Name']}=={distribution.version}")
    return pins


def download(pins: list[str], dest: Path, python_version: str) -> None:
    platforms = ["manylinux2014_x86_64", "manylinux1_x86_64"] + [
        f"manylinux_2_{minor}_x86_64" for minor in range(5, 40)
    ]
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
        "--python-version", minor_version(python_version), "--implementation", "cp",
        "--dest", str(dest),
    ]  # fmt: skip
    for platform in platforms:
        command += ["--platform", platform]
    subprocess.run(command + pins, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=ROOT / ".whl")
    # The lent machines' Python (KINDS.md); markers compare the full version.
    parser.add_argument("--python-version", default="3.12.3")
    args = parser.parse_args()
    pins = wheels_to_carry(args.python_version)
    args.dest.mkdir(parents=True, exist_ok=True)
    for stale in args.dest.glob("*.whl"):
        stale.unlink()
    download(pins, args.dest, args.python_version)
    wheels = sorted(args.dest.glob("*.whl"))
    size = sum(wheel.stat().st_size for wheel in wheels) / 2**20
    print(f"{len(wheels)} wheels for Python {args.python_version}, {size:.1f} MiB in {args.dest}")


if __name__ == "__main__":
    main()
