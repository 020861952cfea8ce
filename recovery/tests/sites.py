"""A throwaway installation as a process sees it: a SQLite file, manage.py runs, the environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
# Variables of the test run that must not leak into a process that plays production
# (the browser tests set DJANGO_ALLOW_ASYNC_UNSAFE, which check --deploy rightly refuses).
OURS = {
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "TRADING_DATABASE_URL",
    "SECURE_SSL_REDIRECT",
    "SECRET_KEY",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}
BUILD_TRADING_TABLES = (
    "from recovery.db.schema import trading_schema_build; trading_schema_build(using='default');"
    "from recovery.db.models import IbSettings, TradeSettings;"
    "TradeSettings.objects.create(risk_defaults={}, execution_data_source='ib', auto_recovery={});"
    "IbSettings.objects.create(host='127.0.0.1', port=7497, api_mode='mock')"
)


def process_env(**values: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in OURS}
    environment.update(values)
    return environment


def manage(*args: str, env: dict[str, str], cwd: Path | str = "/") -> subprocess.CompletedProcess[str]:
    """manage.py as cron runs it: by absolute path, from a folder that is not the repository."""
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def site_build(*, env: dict[str, str], cwd: Path | str = "/") -> None:
    """Django's tables (migrate) and the trading tables with a settings row and IB in mock mode.

    The database file must be named test_* (recovery.db.schema builds trading tables only there).
    """
    # --skip-checks: the checks rightly fail until the trading tables exist.
    steps = (
        ("migrate", "--noinput", "--verbosity", "0", "--skip-checks"),
        ("shell", "--no-imports", "-c", BUILD_TRADING_TABLES),
    )
    for args in steps:
        done = manage(*args, env=env, cwd=cwd)
        assert done.returncode == 0, done.stderr


def env_file_values(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env example, comments and blank lines left out."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values
