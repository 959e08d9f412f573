"""The `trainyard` user commands as a user runs them: the installed command against a real API
and worker, its output, its JSON for scripts and its exit codes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from client import Client, Unauthorized
from tests.reliability.servers import running_service
from tests.sample_data import csv_bytes, mixed_classification

pytestmark = pytest.mark.e2e
KEY = "ty_cli_" + "c" * 24


class Cli:
    def __init__(self, base_url: str, config: Path) -> None:
        self.env = {
            **os.environ,
            "TRAINYARD_CONFIG": str(config),
            "TRAINYARD_URL": base_url,
            "COLUMNS": "200",
        }
        self.env.pop("TRAINYARD_API_KEY", None)

    def __call__(self, *args: str | Path, code: int = 0, **env: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *map(str, args)],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str | Path, **env: str) -> dict:
        return json.loads(self(*args, "--json", **env).stdout)


def test_a_user_trains_watches_searches_and_serves_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "mixed.csv"
    data.write_bytes(csv_bytes(mixed_classification(n=300)))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"task": "classification", "target": "label", "model_name": "m",
                                "training": {"epochs": 5}}))  # fmt: skip
    bad_spec = tmp_path / "bad.json"
    bad_spec.write_text(json.dumps({"task": "classification", "target": "label",
                                    "model": {"family": "mlp", "dropout": 1.5}}))  # fmt: skip
    config = tmp_path / "config" / "trainyard.json"

    with running_service(tmp_path, KEY) as service:
        service.worker("worker")
        cli = Cli(service.base_url, config)

        # Sign in: a wrong key is refused (exit 1); the right one is saved, owner-only.
        cli("datasets", "list", code=4)  # no key yet
        refused = cli("login", "--url", service.base_url, "--key", "ty_bad_" + "x" * 24, code=1)
        assert "refused" in refused.stderr
        cli("login", "--url", service.base_url, "--key", KEY)
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert json.loads(config.read_text()) == {"url": service.base_url, "key": KEY}

        dataset = cli.json("datasets", "upload", data)
        assert dataset["rows"] == 300
        assert "mixed" in cli("datasets", "list").stdout
        profile = cli.json("datasets", "profile", dataset["id"], "--target", "label")
        assert {c["name"] for c in profile["columns"]} >= {"x1", "colour", "label"}

        # A spec the rules refuse: exit 1, the field and the reason on stderr.
        refused = cli("specs", "validate", bad_spec, "--dataset", dataset["id"], code=1)
        assert "spec.model.dropout" in refused.stderr and "less than 1" in refused.stderr
        checked = cli.json("specs", "validate", spec, "--dataset", dataset["id"])
        assert checked["parameters"] > 0

        # Submit and watch: a progress bar to the last epoch, then the ended job.
        watched = cli("jobs", "submit", spec, "--dataset", dataset["id"], "--watch")
        assert "epoch 5/5" in watched.stderr and "succeeded" in watched.stdout
        # Where it trained: what device and precision "auto" chose on this machine.
        assert "trained on cpu, fp32" in watched.stdout
        job = cli.json("jobs", "list")["items"][0]
        assert job["status"] == "succeeded" and job["progress"]["epoch"] == 5
        logs = cli.json("jobs", "logs", job["id"])
        assert [e["epoch"] for e in logs["epochs"]] == [1, 2, 3, 4, 5]
        assert "val_accuracy" in cli("jobs", "logs", job["id"]).stdout

        # A job that does not succeed: watching it exits 3.
        long_spec = tmp_path / "long.json"
        training = {"epochs": 1000, "early_stopping": None}
        long_spec.write_text(
            json.dumps({"task": "classification", "target": "label", "training": training})
        )
        long_job = cli.json("jobs", "submit", long_spec, "--dataset", dataset["id"])
        assert cli.json("jobs", "cancel", long_job["id"])["cancel_requested"] is True
        cli("jobs", "watch", long_job["id"], code=3)
        assert cli.json("jobs", "show", long_job["id"])["status"] == "cancelled"

        # The registry: list, predict from a file, alias, export.
        assert "m" in [m["name"] for m in cli.json("models", "list")["items"]]
        rows = tmp_path / "rows.json"
        rows.write_text(json.dumps([{"x1": 0.2, "x2": -0.3, "colour": "red"}]))
        cli("models", "alias", "m", "production", "1")
        predictions = cli.json("models", "predict", "m@production", "--rows", rows)
        assert len(predictions) == 1 and "label" in predictions[0]
        versions = cli.json("models", "list", "m")["items"]
        assert versions[0]["aliases"] == ["production"]
        exported = tmp_path / "m.onnx"
        cli("models", "export", "m@production", "-o", exported)
        assert exported.stat().st_size > 1000
        cli("models", "alias", "m", "production", "--delete")
        missing = cli("models", "predict", "m@production", "--rows", rows, code=1)
        assert "404" in missing.stderr

        # A study, watched to its end; its best model answers.
        space = tmp_path / "space.json"
        space.write_text(json.dumps({"training.learning_rate": {
            "type": "float", "low": 1e-3, "high": 1e-1, "log": True}}))  # fmt: skip
        study = json.loads(
            cli("studies", "create", spec, "--space", space, "--dataset", dataset["id"],
                "--name", "cli-search", "--max-trials", "3", "--watch", "--json").stdout
        )  # fmt: skip
        assert study["status"] == "succeeded" and study["counts"]["succeeded"] == 3
        assert "cli-search" in cli("studies", "list").stdout
        shown = cli("studies", "show", study["id"]).stdout
        assert "training.learning_rate" in shown and "cli-search@best" in shown
        assert cli.json("models", "predict", "cli-search@best", "--rows", rows)

        # A service that cannot be reached: exit 4.
        gone = cli("jobs", "list", code=4, TRAINYARD_URL="http://127.0.0.1:9")
        assert "cannot reach" in gone.stderr


def test_a_user_lists_and_revokes_the_projects_keys_from_the_command_line(tmp_path: Path) -> None:
    config = tmp_path / "config" / "trainyard.json"
    with running_service(tmp_path, KEY) as service:
        cli = Cli(service.base_url, config)
        cli("keys", "list", code=4)  # no key yet
        cli("login", "--url", service.base_url, "--key", KEY)
        with service.client() as client:
            spare = client.create_key("ci")

        listed = cli.json("keys", "list")["items"]
        assert {k["name"] for k in listed} >= {"ci"} and len(listed) == 2
        assert all("secret" not in k for k in listed)
        first = next(k for k in listed if k["id"] != spare.id)
        table = cli("keys", "list").stdout
        assert spare.id in table and spare.prefix in table

        revoked = cli.json("keys", "revoke", spare.id)
        assert revoked["id"] == spare.id and revoked["revoked_at"] is not None
        with Client(service.base_url, spare.secret) as gone, pytest.raises(Unauthorized):
            gone.list_datasets()
        assert "revoked" in cli("keys", "revoke", spare.id).stdout  # again: no error

        # The API's refusals exit 1: an unknown key, and the project's last active key.
        unknown = cli("keys", "revoke", "key_nope", code=1)
        assert "404" in unknown.stderr
        last = cli("keys", "revoke", first["id"], code=1)
        assert "409" in last.stderr and "last active key" in last.stderr
        assert cli.json("keys", "list")["items"][0]["id"]  # the key still works
