"""Cheap checks of deploy/: compose.yaml, the systemd units, the Dockerfile and its scripts.

No Docker engine or systemd is needed: compose.yaml is read with PyYAML, units with configparser
(and `systemd-analyze verify` where it is installed), and the shell scripts run with fake
`tinbao` executables.
"""

from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
UNITS = DEPLOY / "systemd"


# --- compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def _tinbao_instances(services: dict) -> dict[str, dict]:
    return {
        name: service
        for name, service in services.items()
        if isinstance(service.get("command"), list) and service["command"][:1] == ["serve"]
    }


def test_compose_has_the_services(compose: dict) -> None:
    services = compose["services"]
    assert {"postgres", "migrate", "tinbao-1", "tinbao-2", "caddy"} <= set(services)
    assert sorted(_tinbao_instances(services)) == ["tinbao-1", "tinbao-2"]


def test_compose_postgres_is_15_with_a_volume_and_pg_isready(compose: dict) -> None:
    postgres = compose["services"]["postgres"]
    assert postgres["image"].split(":")[1].startswith("15")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    mounts = dict(volume.split(":", 1) for volume in postgres["volumes"])
    assert mounts.get("pgdata") == "/var/lib/postgresql/data"
    assert "pgdata" in compose["volumes"]


def test_compose_migrate_runs_once_after_postgres_is_healthy(compose: dict) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    entrypoint = (DEPLOY / "docker-entrypoint.sh").read_text(encoding="utf-8")
    assert re.search(r"^\s*migrate\)", entrypoint, re.MULTILINE)


def test_compose_instances_wait_for_migrate_and_are_health_checked(compose: dict) -> None:
    for name, service in _tinbao_instances(compose["services"]).items():
        assert service["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }, name
        assert "/healthz" in " ".join(service["healthcheck"]["test"]), name
        assert "ports" not in service, f"{name} must be reachable through Caddy only"
        assert service["command"] == ["serve", "--host", "0.0.0.0", "--port", "8000"]
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == REPO
        assert (REPO / build["dockerfile"]).is_file()
        assert service["env_file"] == "tinbao.env"
        assert "TINBAO_DATABASE_URL" in service["environment"]
        assert service["environment"]["TINBAO_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_compose_caddy_fronts_with_tls_ports_and_kept_data(compose: dict) -> None:
    caddy = compose["services"]["caddy"]
    assert caddy["image"].split(":")[0] == "caddy"
    published = {port.split(":")[0] for port in caddy["ports"]}
    assert published == {"80", "443"}
    mounts = dict(volume.split(":")[:2] for volume in caddy["volumes"])
    assert mounts["./Caddyfile"] == "/etc/caddy/Caddyfile"
    assert (DEPLOY / "Caddyfile").is_file()
    assert mounts["caddy_data"] == "/data" and "caddy_data" in compose["volumes"]
    assert "TINBAO_DOMAIN" in caddy["environment"]
    # Caddy gets no application secret.
    assert "env_file" not in caddy


def test_compose_variables_are_all_in_the_env_example() -> None:
    used = set(re.findall(r"\$\{([A-Z_]+)", (DEPLOY / "compose.yaml").read_text()))
    example = (DEPLOY / "tinbao.env.example").read_text(encoding="utf-8")
    defined = set(re.findall(r"^([A-Z_]+)=", example, re.MULTILINE))
    assert used - {"KEEP_DAILY"} <= defined


def test_env_example_leaves_every_secret_to_be_generated() -> None:
    """An unfilled copy must not start: empty secrets are refused, placeholders say CHANGE-ME."""
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "tinbao.env.example").read_text(encoding="utf-8").splitlines()
        if re.match(r"^[A-Z_]+=", line)
    )
    for key in ("TINBAO_SECRET_KEY", "TINBAO_WEBHOOK_SECRET", "POSTGRES_PASSWORD"):
        assert values[key] == "", key
    assert "CHANGE-ME" in values["TINBAO_PUBLIC_URL"] and "CHANGE-ME" in values["TINBAO_DOMAIN"]
    assert values["TINBAO_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert values["TINBAO_MODE"] == "production"
    # The filled-in copy is never committed.
    ignored = (DEPLOY / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "tinbao.env" in ignored


# --- systemd units ---------------------------------------------------------------------------


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(UNITS / name, encoding="utf-8")
    return parser


def _all_values(name: str, key: str) -> list[str]:
    """Every value of a key that may repeat (ExecStart= in a oneshot); configparser keeps one."""
    return [
        line.split("=", 1)[1].strip()
        for line in (UNITS / name).read_text(encoding="utf-8").splitlines()
        if line.startswith(f"{key}=")
    ]


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)\s*(s|min|)", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_instance_unit() -> None:
    unit = _unit("tinbao@.service")
    assert "tinbao-migrate.service" in unit["Unit"]["Requires"].split()
    assert "tinbao-migrate.service" in unit["Unit"]["After"].split()
    service = unit["Service"]
    assert service["ExecStart"].endswith("tinbao serve --host 127.0.0.1 --port %i")
    assert service["User"] == "tinbao"
    assert service["EnvironmentFile"] == "/etc/tinbao/tinbao.env"
    assert service["WorkingDirectory"] == "/var/lib/tinbao"
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert _seconds(service["TimeoutStopSec"]) >= 30, "the instance needs time to drain"
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ReadWritePaths": "/var/lib/tinbao",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == value, key
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_migrate_unit_is_a_oneshot_that_runs_again_on_each_start() -> None:
    unit = _unit("tinbao-migrate.service")
    service = unit["Service"]
    assert service["Type"] == "oneshot"
    assert service["User"] == "tinbao"
    assert service["EnvironmentFile"] == "/etc/tinbao/tinbao.env"
    commands = _all_values("tinbao-migrate.service", "ExecStart")
    assert commands[0].endswith("tinbao db upgrade")
    assert any(command.endswith("tinbao communes sync") for command in commands)
    # RemainAfterExit=yes would make `systemctl start tinbao-migrate` a no-op in an upgrade.
    assert service.get("RemainAfterExit", "no") == "no"
    assert service["ProtectSystem"] == "strict"


def test_backup_service_and_timer() -> None:
    service = _unit("tinbao-backup.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith("/deploy/tinbao-backup.sh")
    environment = dict(
        value.split("=", 1) for value in _all_values("tinbao-backup.service", "Environment")
    )
    assert service["ReadWritePaths"] == environment["BACKUP_DIR"]
    assert int(environment["KEEP_DAILY"]) >= 1
    assert service["EnvironmentFile"] == "/etc/tinbao/tinbao.env"
    timer = _unit("tinbao-backup.timer")
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Timer"]["Unit"] == "tinbao-backup.service"
    assert re.fullmatch(r"(daily|\*-\*-\* \d\d:\d\d(:\d\d)?)", timer["Timer"]["OnCalendar"])
    assert timer["Install"]["WantedBy"] == "timers.target"


def test_units_point_at_the_paths_docs_install() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in ("tinbao@.service", "tinbao-migrate.service", "tinbao-backup.service"):
        for command in _all_values(name, "ExecStart"):
            executable = command.split()[0]
            assert executable.startswith("/opt/tinbao/"), executable
        assert name in guide
    assert "/opt/tinbao/venv" in guide and "/opt/tinbao/src" in guide


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing")
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    """systemd's own parser: unknown keys, bad values and missing units are reported.

    The executables are pointed at this checkout so that "not executable" means a real problem.
    """
    tinbao = Path(shutil.which("tinbao", path=str(REPO / ".venv" / "bin")) or "")
    if not tinbao.is_file():
        pytest.skip("no .venv/bin/tinbao to stand in for /opt/tinbao/venv/bin/tinbao")
    for unit in UNITS.iterdir():
        content = unit.read_text(encoding="utf-8")
        content = content.replace("/opt/tinbao/venv/bin/tinbao", str(tinbao))
        content = content.replace("/opt/tinbao/src", str(REPO))
        (tmp_path / unit.name).write_text(content, encoding="utf-8")
    # A template is verified through an instance of it.
    shutil.copy(tmp_path / "tinbao@.service", tmp_path / "tinbao@8001.service")
    names = [
        "tinbao@8001.service",
        "tinbao-migrate.service",
        "tinbao-backup.service",
        "tinbao-backup.timer",
    ]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *[f"./{name}" for name in names]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --- Dockerfile and its entry point ----------------------------------------------------------


def test_dockerfile_copies_every_package_pyproject_installs() -> None:
    """The image is `pip install .` of the COPYed paths: a package missing there is not shipped."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    copied = set()
    for line in (DEPLOY / "Dockerfile").read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--") for w in words[1:]):
            copied.update(word.rstrip("/").removeprefix("./") for word in words[1:-1])
    assert packages <= copied
    assert {"pyproject.toml", project["project"]["readme"]} <= copied


def test_dockerfile_essentials() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert stages and all(stage == "python:3.11-slim" for stage in stages)
    assert re.search(r"pip install --no-cache-dir \.$", dockerfile, re.MULTILINE)
    assert "[dev]" not in dockerfile
    assert re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)[-1] == "tinbao"
    assert re.search(r"^EXPOSE 8000$", dockerfile, re.MULTILINE)
    assert re.search(r"TINBAO_LOG_FORMAT=json", dockerfile)
    healthcheck = dockerfile[dockerfile.index("HEALTHCHECK") :].split("\n\n")[0]
    assert "urllib.request" in healthcheck and "/healthz" in healthcheck
    assert "curl" not in healthcheck
    assert re.search(r'^ENTRYPOINT \["tinbao-entrypoint"\]', dockerfile, re.MULTILINE)


@pytest.fixture
def fake_tinbao(tmp_path: Path) -> tuple[Path, Path]:
    """A `tinbao` on PATH that logs its arguments (and one environment variable) and succeeds."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    fake = bin_dir / "tinbao"
    fake.write_text(
        f'#!/bin/sh\necho "$* | ${{TINBAO_SECRET_KEY-unset}}" >> {log}\n', encoding="utf-8"
    )
    fake.chmod(0o755)
    return fake, log


@pytest.mark.parametrize(
    ("arguments", "calls"),
    [
        ([], ["db upgrade", "communes sync", "serve --host 0.0.0.0 --port 8000"]),
        (["migrate"], ["db upgrade", "communes sync"]),
        (["serve", "--host", "0.0.0.0", "--port", "8000"], ["serve --host 0.0.0.0 --port 8000"]),
        (["webhook", "info"], ["webhook info"]),
    ],
    ids=["default", "migrate", "serve", "other-command"],
)
def test_docker_entrypoint(
    fake_tinbao: tuple[Path, Path], arguments: list[str], calls: list[str]
) -> None:
    fake, log = fake_tinbao
    env = {**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}"}
    subprocess.run(
        ["sh", str(DEPLOY / "docker-entrypoint.sh"), *arguments], env=env, check=True, timeout=30
    )
    assert [line.split(" | ")[0] for line in log.read_text().splitlines()] == calls


def test_docker_entrypoint_stops_when_the_migration_fails(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "tinbao").write_text(
        f'#!/bin/sh\necho "$*" >> {tmp_path}/calls.log\n[ "$1" != db ]\n', encoding="utf-8"
    )
    (bin_dir / "tinbao").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["sh", str(DEPLOY / "docker-entrypoint.sh")], env=env, timeout=30)
    assert result.returncode != 0
    assert (tmp_path / "calls.log").read_text().splitlines() == ["db upgrade"]


@pytest.mark.skipif(os.geteuid() != 0, reason="tinbao-admin switches user with runuser (root)")
def test_tinbao_admin_loads_the_env_file_as_data(
    fake_tinbao: tuple[Path, Path], tmp_path: Path
) -> None:
    fake, log = fake_tinbao
    env_file = tmp_path / "tinbao.env"
    env_file.write_text(
        "# comment\n\nTINBAO_SECRET_KEY=a=b$(touch pwned);`x`\nnot a setting\n",
        encoding="utf-8",
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TINBAO_")},
        "TINBAO_ENV_FILE": str(env_file),
        "TINBAO_BIN": str(fake),
        "TINBAO_STATE_DIR": str(tmp_path),
        "TINBAO_ADMIN_USER": "root",
    }
    admin = ["bash", str(DEPLOY / "tinbao-admin"), "webhook", "info"]
    subprocess.run(admin, env=env, check=True, timeout=30, cwd=tmp_path)
    # A variable set in the environment wins over the file.
    subprocess.run(
        admin, env={**env, "TINBAO_SECRET_KEY": "given"}, check=True, timeout=30, cwd=tmp_path
    )
    assert log.read_text().splitlines() == [
        "webhook info | a=b$(touch pwned);`x`",
        "webhook info | given",
    ]
    assert not (tmp_path / "pwned").exists()
