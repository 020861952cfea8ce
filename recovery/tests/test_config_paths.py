"""The shipped configuration: .env.example works locally as it is, paths count from the repository."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from recovery.tests.sites import BASE_DIR, env_file_values, manage, process_env, site_build

pytestmark = pytest.mark.processes

LOCAL_EXAMPLE = BASE_DIR / ".env.example"
PRODUCTION_EXAMPLE = BASE_DIR / "deploy" / "production.env.example"
SHOW_SETTINGS = """
import json
from django.conf import settings as s
from django.test import Client
c = Client(HTTP_HOST="127.0.0.1")
print(json.dumps({
    "debug": s.DEBUG,
    "redirect": s.SECURE_SSL_REDIRECT,
    "secure_cookie": s.SESSION_COOKIE_SECURE,
    "database": s.DATABASES["default"]["NAME"],
    "bridge": str(s.LEAN_BRIDGE_ROOT),
    "static": str(s.STATIC_ROOT),
    "health": c.get("/healthz/recovery").status_code,
    "login": c.get("/admin/login/").status_code,
}))
"""


@pytest.fixture
def relative_database() -> Iterator[tuple[str, Path]]:
    """A sqlite:/// URL relative to the repository, and where the file must end up."""
    name = f"var/test_config_paths_{secrets.token_hex(4)}.sqlite3"
    path = BASE_DIR / name
    # A fresh clone has no var/ yet (make demo creates it); SQLite does not create folders.
    created = not path.parent.exists()
    path.parent.mkdir(exist_ok=True)
    yield f"sqlite:///{name}", path
    path.unlink(missing_ok=True)
    if created:
        path.parent.rmdir()


def test_env_example_as_shipped_serves_locally_over_plain_http(tmp_path: Path) -> None:
    """Any wall clock: the process only reports its settings."""
    values = env_file_values(LOCAL_EXAMPLE)
    result = manage("shell", "--no-imports", "-c", SHOW_SETTINGS, env=process_env(**values), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is True and shown["redirect"] is False and shown["secure_cookie"] is False
    assert shown["login"] == 200  # not a 301 to https
    assert shown["health"] in (200, 503)  # the sweep's health, not a redirect
    # Relative paths count from the repository, not from the working directory.
    assert shown["database"] == str(BASE_DIR / "var" / "tradeops.sqlite3")
    assert shown["bridge"] == str(BASE_DIR / "var" / "bridge")
    assert shown["static"] == str(BASE_DIR / "var" / "static")


def test_auto_recover_runs_from_another_directory_on_a_relative_sqlite_url(
    tmp_path: Path, relative_database: tuple[str, Path]
) -> None:
    """Any wall clock: the database has no orders, so the sweep's outcome has no time in it."""
    url, path = relative_database
    (tmp_path / "bridge").mkdir()  # a sweep without its bridge root is blocked, never ok
    env = process_env(
        SECRET_KEY="x",
        DATABASE_URL=url,
        LEAN_BRIDGE_ROOT=str(tmp_path / "bridge"),
        AUTO_RECOVER_LOCK_DIR=str(tmp_path),
    )
    site_build(env=env, cwd=tmp_path)

    result = manage("auto_recover", "--json", env=env, cwd=tmp_path)

    assert result.returncode == 0, result.stderr  # not "unable to open database file"
    assert json.loads(result.stdout)["scanned"] == 0
    assert path.is_file() and not (tmp_path / "var").exists()
    health = manage("auto_recover_health", env=env, cwd="/")
    assert health.returncode == 0 and health.stdout.startswith("ok: last run")


def test_production_example_passes_the_deploy_checks(tmp_path: Path) -> None:
    """Any wall clock: `check --deploy` reads no time."""
    values = env_file_values(PRODUCTION_EXAMPLE)
    placeholders = sorted(k for k, v in values.items() if "<" in v)
    assert placeholders == ["DATABASE_URL", "SECRET_KEY", "TRADING_DATABASE_URL"]
    values.pop("TRADING_DATABASE_URL")
    values.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path / 'test_production.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        CACHE_DIR=str(tmp_path / "cache"),
        LEAN_BRIDGE_ROOT=str(tmp_path / "bridge"),
        AUTO_RECOVER_LOCK_DIR=str(tmp_path),
    )
    env = process_env(**values)
    site_build(env=env)
    # Before collectstatic every admin page would be a 500: the check says so (recovery.W004).
    early = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert early.returncode == 1 and "recovery.W004" in early.stderr, early.stdout + early.stderr
    collected = manage("collectstatic", "--noinput", "--verbosity", "0", "--skip-checks", env=env)
    assert collected.returncode == 0, collected.stderr

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
