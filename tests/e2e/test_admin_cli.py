"""`trainyard projects create` and `trainyard keys create --project` as an admin runs them:
the installed command against a real `trainyard api`, with the admin key from the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from client import Client
from tests.reliability.servers import running_service

pytestmark = pytest.mark.e2e
KEY = "ty_first_" + "f" * 24
ADMIN_KEY = "admin-cli-" + "k" * 24


def trainyard(*args: str, code: int = 0, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TRAINYARD_")}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env={**base, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done


def test_an_admin_creates_a_project_and_a_key_from_the_command_line(tmp_path: Path) -> None:
    with running_service(tmp_path, KEY, admin_key=ADMIN_KEY) as service:
        admin = {"TRAINYARD_URL": service.base_url, "TRAINYARD_ADMIN_KEY": ADMIN_KEY}

        created = trainyard("projects", "create", "analytics", **admin)
        assert "analytics" in created.stdout and "ty_" in created.stdout
        project = json.loads(trainyard("projects", "create", "research", "--json", **admin).stdout)
        assert project["name"] == "research"
        with Client(service.base_url, project["key"]["secret"]) as research:
            assert research.list_datasets()["items"] == []

        key = json.loads(
            trainyard("keys", "create", "--project", project["id"], "--name", "ci", "--json",
                      **admin).stdout
        )  # fmt: skip
        with Client(service.base_url, key["secret"]) as research:
            assert {k["id"] for k in research.list_keys()["items"]} == {
                project["key"]["id"],
                key["id"],
            }
        # --url wins over the environment.
        elsewhere = {**admin, "TRAINYARD_URL": "http://127.0.0.1:9"}
        listed = trainyard("projects", "list", "--url", service.base_url, "--json", **elsewhere)
        assert {"analytics", "research"} <= {p["name"] for p in json.loads(listed.stdout)["items"]}

        # The API's refusals: exit 1, the status and the reason on stderr.
        duplicate = trainyard("projects", "create", "research", code=1, **admin)
        assert "409" in duplicate.stderr and "exists already" in duplicate.stderr
        project_key = {**admin, "TRAINYARD_ADMIN_KEY": KEY}
        refused = trainyard("projects", "create", "intruder", code=1, **project_key)
        assert "403" in refused.stderr and "admin key" in refused.stderr
        missing = trainyard("keys", "create", "--project", "prj_nope", code=1, **admin)
        assert "404" in missing.stderr
        # No admin key at all: exit 4, before any call.
        unset = trainyard("projects", "create", "x", code=4, TRAINYARD_URL=service.base_url)
        assert "TRAINYARD_ADMIN_KEY" in unset.stderr
