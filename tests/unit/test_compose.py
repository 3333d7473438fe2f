"""docker-compose.yml is validated by a real Compose parser (Debian's docker-compose), then its
services, commands and dependencies are checked."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from leadgen.queues import Queue

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: `apt-get install docker-compose` (.ci/run does)")
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(ROOT / "docker-compose.yml", work / "docker-compose.yml")
    (work / ".env").write_text("POSTGRES_PASSWORD=secret\nFLOWER_BASIC_AUTH=admin:pw\n")
    result = subprocess.run([binary, "config"], cwd=work, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_services_present(compose):
    services = compose["services"]
    assert {"db", "redis", "migrate", "beat", "flower"} <= set(services)
    assert any(name.startswith("worker") for name in services)


def test_database_and_redis_are_not_published(compose):
    for name in ("db", "redis"):
        assert not compose["services"][name].get("ports"), name
    assert "healthcheck" in compose["services"]["db"]
    assert "pgdata" in compose["volumes"]


def test_migrate_runs_first(compose):
    services = compose["services"]
    assert services["migrate"]["command"] == ["alembic", "upgrade", "head"]
    assert services["migrate"]["depends_on"]["db"]["condition"] == "service_healthy"
    for name, service in services.items():
        if name.startswith("worker") or name in {"beat", "flower"}:
            condition = service["depends_on"]["migrate"]["condition"]
            assert condition == "service_completed_successfully", name


def test_every_queue_has_a_worker(compose):
    consumed: set[str] = set()
    for name, service in compose["services"].items():
        if name.startswith("worker"):
            command = service["command"]
            consumed |= set(command[command.index("-Q") + 1].split(","))
            assert service.get("healthcheck"), name
    assert consumed == {queue.value for queue in Queue}


def test_beat_and_flower_start_scripts():
    beat = (ROOT / "docker" / "beat.sh").read_text()
    assert "rm -f /run/leadgen/celerybeat.pid" in beat and "beat" in beat
    flower = (ROOT / "docker" / "flower.sh").read_text()
    assert "--basic-auth" in flower and "inspect ping" in flower


def test_dockerfile_runs_as_non_root_without_test_tools():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.12-slim" in dockerfile
    assert "USER leadgen" in dockerfile
    assert ".[test]" not in dockerfile and "pytest" not in dockerfile
