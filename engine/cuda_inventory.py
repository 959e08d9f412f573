"""What CUDA devices a machine has, found without importing torch here: a worker asks before
it starts listening, and its process must never initialise CUDA itself."""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class CudaInventory:
    """The CUDA devices a machine has: the total memory of each, in bytes, in device order."""

    memory_bytes: tuple[int, ...] = ()

    @property
    def devices(self) -> int:
        return len(self.memory_bytes)


# Run in a child process: asking torch initialises CUDA, and a process that did cannot fork
# children that use it (a Celery parent must never have).
_PROBE = (
    "import json, torch\n"
    "n = torch.cuda.device_count() if torch.cuda.is_available() else 0\n"
    "print(json.dumps([torch.cuda.get_device_properties(i).total_memory for i in range(n)]))\n"
)


def cuda_inventory(timeout: float = 120.0) -> CudaInventory:
    """This machine's CUDA devices, asked of a child Python so this process never touches
    CUDA. On Linux a machine with no /dev/nvidia* device has none, and no child is started."""
    if sys.platform.startswith("linux") and not glob.glob("/dev/nvidia[0-9]*"):
        return CudaInventory()
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )
        return CudaInventory(tuple(int(m) for m in json.loads(probe.stdout.strip() or "[]")))
    except (subprocess.SubprocessError, OSError, ValueError):
        return CudaInventory()
