import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def _args(command: str | list[str]) -> list[str]:
    return command.split() if isinstance(command, str) else list(command)


def _volume_sources(service: dict) -> dict[str, str]:
    # target -> source, for the short (`src:dst[:mode]`) and the long syntax.
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def test_fleet_has_the_four_services(services: dict) -> None:
    assert {"api", "worker", "redis", "postgres"} <= services.keys()


def test_redis_is_append_only_and_never_evicts(services: dict) -> None:
    args = _args(services["redis"]["command"])
    assert args[args.index("--appendonly") + 1] == "yes"
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"


def test_worker_reserves_an_nvidia_gpu(services: dict) -> None:
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)


@pytest.mark.parametrize("name", ["api", "redis", "postgres"])
def test_service_has_a_healthcheck(services: dict, name: str) -> None:
    assert services[name]["healthcheck"]["test"]


def test_api_waits_for_healthy_redis_and_postgres(services: dict) -> None:
    depends_on = services["api"]["depends_on"]
    for name in ("redis", "postgres"):
        assert depends_on[name]["condition"] == "service_healthy"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_app_points_at_postgres_and_redis(services: dict, name: str) -> None:
    env = services[name]["environment"]
    assert env["TRAINYARD_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in env["TRAINYARD_DATABASE_URL"]
    assert env["TRAINYARD_BROKER_URL"].startswith("redis://redis:6379/")


def test_api_and_worker_share_the_store_volume(compose: dict, services: dict) -> None:
    api, worker = _volume_sources(services["api"]), _volume_sources(services["worker"])
    assert api["/data"] == worker["/data"]
    assert api["/data"] in compose["volumes"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["TRAINYARD_STORE_URL"] == "file:///data/store"


@pytest.mark.parametrize(
    ("name", "target"), [("postgres", "/var/lib/postgresql/data"), ("redis", "/data")]
)
def test_data_lives_on_a_declared_named_volume(
    compose: dict, services: dict, name: str, target: str
) -> None:
    assert _volume_sources(services[name])[target] in compose["volumes"]


def test_dockerfile_installs_pinned_torch_before_the_project() -> None:
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    torch_line = next(i for i, line in enumerate(lines) if "pip install torch==2.13.0" in line)
    project_line = next(
        i for i, line in enumerate(lines) if re.fullmatch(r"RUN pip install .*\s\.", line.strip())
    )
    assert torch_line < project_line
    # The project installs against the lock file, so the image gets the tested versions.
    assert "-c requirements.lock" in lines[project_line]


def test_node_workers_use_the_host_network_and_say_where_they_are_reached() -> None:
    # Jobs on several machines: the rendezvous and the ranks' ports are picked at run time,
    # so a node worker is on the machine's network and names the address others reach.
    nodes = yaml.safe_load((ROOT / "docker-compose.nodes.yml").read_text())["services"]
    worker = nodes["node-worker"]
    assert worker["network_mode"] == "host"
    assert {"TRAINYARD_WORKER_HOST", "TRAINYARD_STORE_URL"} <= worker["environment"].keys()
    assert "file://" not in str(worker["environment"]["TRAINYARD_STORE_URL"])
