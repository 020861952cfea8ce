"""Configuration from the environment: clear one-line errors, sane defaults.

Any wall clock: the processes here only load settings and read no time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import environ
import pytest
from django.conf import settings

pytestmark = pytest.mark.processes

BASE_DIR = Path(settings.BASE_DIR)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE"}}
    environment.update(env)
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=BASE_DIR,
        timeout=120,
    )


def test_missing_secret_key_with_debug_off_is_one_clear_line() -> None:
    result = _manage("check", SECRET_KEY="", DEBUG="false")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: SECRET_KEY is required when DEBUG is off; set it in the "
        "environment or in .env (see .env.example)"
    ]


@pytest.mark.parametrize("url", ["nonsense://host/db", "postgres-ish", "mysql://host-without-db"])
def test_bad_database_url_is_one_line_and_exit_2(url: str) -> None:
    result = _manage("check", SECRET_KEY="x", DATABASE_URL=url)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: DATABASE_URL")
    assert "Traceback" not in result.stderr


def test_mariadb_scheme_means_the_mysql_backend() -> None:
    config = environ.Env.db_url_config("mariadb://u:p@db.example:3307/trading")
    assert config["ENGINE"] == "django.db.backends.mysql"
    assert (config["HOST"], config["PORT"], config["NAME"]) == ("db.example", 3307, "trading")


def test_default_sqlite_path_is_absolute_under_var() -> None:
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
        SECRET_KEY="x",
        DATABASE_URL="",
    )
    # An empty DATABASE_URL is not "unset"; it must fail loudly rather than guess.
    assert result.returncode == 2
    environment = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='tradeops.settings';"
            "from django.conf import settings; print(settings.DATABASES['default']['NAME'])",
        ],
        capture_output=True,
        text=True,
        cwd="/",
        timeout=60,
        env={**environment, "SECRET_KEY": "x", "PYTHONPATH": str(BASE_DIR)},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(BASE_DIR / "var" / "tradeops.sqlite3")


def test_mysql_connections_are_strict_and_utf8mb4() -> None:
    from tradeops.settings import _database

    os.environ["TRADEOPS_TEST_URL"] = "mysql://root@127.0.0.1:3306/x"
    try:
        config = _database("TRADEOPS_TEST_URL", None)
    finally:
        del os.environ["TRADEOPS_TEST_URL"]
    assert config["OPTIONS"]["charset"] == "utf8mb4"
    assert "STRICT_TRANS_TABLES" in config["OPTIONS"]["init_command"]


def test_env_example_lists_every_variable_the_settings_read() -> None:
    source = (BASE_DIR / "tradeops" / "settings.py").read_text()
    import re

    read = set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', source)) | set(
        re.findall(r'(?:_database|_path|_path_map)\("([A-Z_]+)"', source)
    )
    read |= {"TRADING_DATABASE_URL"}
    example = (BASE_DIR / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", example, flags=re.MULTILINE))
    assert read - listed == set()


# --- TLS to the database, and the migration account ------------------------------------------


def test_tls_options_in_the_url_reach_the_driver_as_it_takes_them() -> None:
    from tradeops.settings import _database

    os.environ["TRADEOPS_TEST_URL"] = (
        "mysql://u:p%40ss%2Fw%23rd@db.internal:3306/trading"
        "?ssl_mode=VERIFY_IDENTITY&ssl_ca=/etc/ssl/certs/db-ca.pem&ssl_cert=/c.pem&ssl_key=/k.pem"
    )
    try:
        config = _database("TRADEOPS_TEST_URL", None)
    finally:
        del os.environ["TRADEOPS_TEST_URL"]
    assert config["PASSWORD"] == "p@ss/w#rd"  # percent-encoded in the URL
    assert config["OPTIONS"]["ssl_mode"] == "VERIFY_IDENTITY"
    assert config["OPTIONS"]["ssl"] == {"ca": "/etc/ssl/certs/db-ca.pem", "cert": "/c.pem", "key": "/k.pem"}
    assert not {"ssl_ca", "ssl_cert", "ssl_key"} & set(config["OPTIONS"])


@pytest.mark.parametrize("mode", ["REQUIRED", "required", "PREFERRED"])
def test_a_tls_mode_the_driver_does_not_enforce_is_refused(mode: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from tradeops.settings import MSG_WEAK_SSL_MODE, _database

    os.environ["TRADEOPS_TEST_URL"] = f"mysql://u@db.internal:3306/trading?ssl_mode={mode}"
    try:
        with pytest.raises(ImproperlyConfigured) as refused:
            _database("TRADEOPS_TEST_URL", None)
    finally:
        del os.environ["TRADEOPS_TEST_URL"]
    assert str(refused.value) == f"TRADEOPS_TEST_URL: {MSG_WEAK_SSL_MODE}"


def mysql_connect(*, ssl_mode: str) -> None:
    """Connect as the suite's server account with this TLS mode (its server has TLS off)."""
    import MySQLdb  # the MySQL driver: not installed for the SQLite-only run
    from django.db import connections

    base = connections["default"].settings_dict
    MySQLdb.connect(
        host=base["HOST"],
        port=int(base["PORT"]),
        user=base["USER"],
        password=base["PASSWORD"],
        ssl_mode=ssl_mode,
    ).close()


@pytest.mark.mysql
@pytest.mark.parametrize("mode", ["VERIFY_CA", "VERIFY_IDENTITY"])
def test_the_verify_modes_are_enforced_by_the_driver(mode: str) -> None:
    """The suite's server has TLS off: a URL that asks for TLS must fail to connect, not fall
    back to plain text (MySQL 2026, SSL connection error)."""
    import MySQLdb

    with pytest.raises(MySQLdb.OperationalError) as refused:
        mysql_connect(ssl_mode=mode)
    assert refused.value.args[0] == 2026, refused.value.args


@pytest.mark.mysql
def test_required_falls_back_to_plain_text_which_is_why_it_is_refused() -> None:
    """Why the settings refuse REQUIRED: this driver connects without TLS anyway."""
    mysql_connect(ssl_mode="REQUIRED")


@pytest.fixture
def settings_loaded(monkeypatch):  # noqa: ANN001, ANN201
    """tradeops.settings as a command line and an environment make it; put back afterwards."""
    import importlib

    import tradeops.settings

    def load(argv: list[str], **env: str):  # noqa: ANN202
        monkeypatch.setattr(sys, "argv", argv)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return importlib.reload(tradeops.settings)

    monkeypatch.setenv("SECRET_KEY", "migrate-url-test")
    monkeypatch.delenv("TRADING_DATABASE_URL", raising=False)
    yield load
    monkeypatch.undo()
    importlib.reload(tradeops.settings)


RUNTIME_URL = "mysql://tradeops_django:run@db.internal:3306/tradeops"
MIGRATE_URL = "mysql://tradeops_migrate:ddl@db.internal:3306/tradeops"


def test_only_migrate_uses_the_migration_account(settings_loaded) -> None:  # noqa: ANN001
    env = {"DATABASE_URL": RUNTIME_URL, "MIGRATE_DATABASE_URL": MIGRATE_URL}
    migrating = settings_loaded(["manage.py", "migrate", "--noinput"], **env).DATABASES["default"]
    assert (migrating["USER"], migrating["PASSWORD"]) == ("tradeops_migrate", "ddl")
    assert migrating["OPTIONS"]["connect_timeout"] == 5  # the same options as any connection
    for argv in (["manage.py", "auto_recover"], ["gunicorn", "tradeops.wsgi:application"], ["manage.py"]):
        assert settings_loaded(argv, **env).DATABASES["default"]["USER"] == "tradeops_django", argv
    plain = settings_loaded(["manage.py", "migrate"], DATABASE_URL=RUNTIME_URL, MIGRATE_DATABASE_URL="")
    assert plain.DATABASES["default"]["USER"] == "tradeops_django"  # not set: DATABASE_URL's account


def test_a_migration_url_for_another_database_is_refused(settings_loaded) -> None:  # noqa: ANN001
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(
        ImproperlyConfigured, match="MIGRATE_DATABASE_URL must name the database of DATABASE_URL"
    ):
        settings_loaded(
            ["manage.py", "migrate"],
            DATABASE_URL=RUNTIME_URL,
            MIGRATE_DATABASE_URL="mysql://tradeops_migrate:ddl@db.internal:3306/trading",
        )


def test_log_format_json_writes_one_json_object_a_line() -> None:
    script = (
        "import logging\n"
        "try:\n    1 / 0\n"
        "except ZeroDivisionError:\n    logging.getLogger('recovery.runs').exception('run failed')\n"
    )
    result = _manage("shell", "-c", script, SECRET_KEY="x", LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    record = json.loads(line)
    assert (record["levelname"], record["name"], record["message"]) == (
        "ERROR",
        "recovery.runs",
        "run failed",
    )
    assert "ZeroDivisionError" in record["exc_info"]
    text = _manage("shell", "-c", script, SECRET_KEY="x")  # the default: text lines
    assert " ERROR recovery.runs run failed" in text.stderr.splitlines()[0]


def test_an_unknown_log_format_is_one_clear_line() -> None:
    result = _manage("check", SECRET_KEY="x", LOG_FORMAT="xml")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: LOG_FORMAT must be text or json (got 'xml')"
    ]
