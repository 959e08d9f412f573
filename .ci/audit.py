"""pip-audit over the locked dependencies.

A known vulnerability fails (exit 1). When the vulnerability database cannot be reached the
audit is skipped with a loud note (exit 0): CI machines without internet still run the tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main(lock: str) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "audit.json"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip_audit",
                "--requirement",
                lock,
                "--no-deps",
                "--disable-pip",
                "--progress-spinner",
                "off",
                "--format",
                "json",
                "--output",
                str(report),
            ],
            capture_output=True,
            text=True,
        )
        if not report.exists():
            print("pip-audit: SKIPPED, the vulnerability service could not be reached")
            print(run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "")
            return 0
        dependencies = json.loads(report.read_text())["dependencies"]
    found = [(d["name"], d["version"], v["id"]) for d in dependencies for v in d.get("vulns", [])]
    skipped = [d["name"] for d in dependencies if d.get("skip_reason")]
    for name, version, vuln in found:
        print(f"pip-audit: {name} {version}: {vuln}")
    if skipped:
        print(
            f"pip-audit: {len(skipped)} of {len(dependencies)} packages could not be looked up "
            "(an index without the vulnerability API?); they were NOT audited"
        )
    print(f"pip-audit: {len(found)} known vulnerabilities in {lock}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock"))
