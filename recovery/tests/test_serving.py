"""Smoke test of the production stack: collectstatic, gunicorn with DEBUG off, as behind the TLS proxy.

gunicorn runs as a subprocess on a free loopback port and is stopped (its whole process
group) whatever the test does. Requests carry X-Forwarded-Proto: https, as nginx sets it
(deploy/nginx-tradeops.conf); a request without it is redirected to https.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from recovery.tests.sites import BASE_DIR, manage, process_env, site_build

pytestmark = pytest.mark.processes

PROXY_HEADERS = {"Host": "ops.example.com", "X-Forwarded-Proto": "https", "X-Real-IP": "203.0.113.9"}
STARTUP_SECONDS = 60
WORKER_TIMEOUT = 97  # not gunicorn's default (30) nor the settings' (150)


@dataclass(frozen=True)
class Served:
    port: int
    env: dict[str, str]
    metrics: Path
    log: Path

    def get(self, path: str, *, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", path, headers=PROXY_HEADERS if headers is None else headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gunicorn exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"gunicorn did not listen on 127.0.0.1:{port} within {STARTUP_SECONDS}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group (master and workers), KILL what is left after ten seconds."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("serving")
    env = process_env(
        DJANGO_SETTINGS_MODULE="tradeops.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="ops.example.com",
        BEHIND_TLS_PROXY="true",
        DATABASE_URL=f"sqlite:///{folder / 'test_serving.sqlite3'}",
        STATIC_ROOT=str(folder / "static"),
        CACHE_DIR=str(folder / "cache"),
        LEAN_BRIDGE_ROOT=str(folder / "bridge"),
        AUTO_RECOVER_LOCK_DIR=str(folder),
        WEB_WORKER_TIMEOUT_SECONDS=str(WORKER_TIMEOUT),
    )
    (folder / "bridge").mkdir()  # a sweep without its bridge root is blocked, never ok
    site_build(env=env)
    collected = manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    log = (folder / "gunicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "tradeops.wsgi:application",
            "--config",
            str(BASE_DIR / "deploy" / "gunicorn.conf.py"),
            "--log-level",
            "debug",  # gunicorn prints its configuration: the worker timeout it took
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--chdir",
            str(BASE_DIR),
        ],
        env=env,
        cwd="/",
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() takes the workers too
    )
    try:
        wait_until_up(process, port)
        yield Served(port=port, env=env, metrics=folder / "tradeops.prom", log=folder / "gunicorn.log")
    finally:
        stop(process)
        log.close()
    assert process.returncode is not None


def test_gunicorn_takes_its_worker_timeout_from_the_settings(served: Served) -> None:
    """Any wall clock: the configuration gunicorn prints reads no time.

    deploy/gunicorn.conf.py hands WEB_WORKER_TIMEOUT_SECONDS to gunicorn: the number check
    recovery.E010 keeps a request's sweep under is the one that kills workers."""
    settings_printed = re.findall(rb"^\s*timeout: (\d+)$", served.log.read_bytes(), re.MULTILINE)
    assert settings_printed == [str(WORKER_TIMEOUT).encode()]


def test_the_login_page_is_served_with_debug_off(served: Served) -> None:
    """Any wall clock: serving a page reads no market time."""
    status, headers, body = served.get("/admin/login/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"csrfmiddlewaretoken" in body
    assert headers["strict-transport-security"].startswith("max-age=31536000")
    assert "secure" in headers["set-cookie"].lower()  # the CSRF cookie only over HTTPS


def test_static_css_is_served_by_whitenoise_hashed_and_cached(served: Served) -> None:
    """Any wall clock: static files read no time."""
    _, _, page = served.get("/admin/login/")
    css = re.search(rb'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', page)
    assert css, "the login page links the hashed base.css from collectstatic's manifest"
    status, headers, body = served.get(css.group(1).decode())
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert b"{" in body and "immutable" in headers["cache-control"]


def test_without_the_proxy_header_it_redirects_to_https(served: Served) -> None:
    """Any wall clock: a redirect reads no time."""
    status, headers, _ = served.get("/admin/login/", headers={"Host": "ops.example.com"})
    assert status == 301 and headers["location"] == "https://ops.example.com/admin/login/"


def test_an_unknown_host_is_refused(served: Served) -> None:
    """Any wall clock: refusing a host reads no time."""
    status, _, _ = served.get("/admin/login/", headers={**PROXY_HEADERS, "Host": "evil.example"})
    assert status == 400


def test_health_turns_200_after_a_cron_style_run(served: Served) -> None:
    """Any wall clock: the run finds no orders, and health compares its heartbeat with a clock
    the server and the run share.
    """
    status, _, body = served.get("/healthz/recovery")
    assert status == 503 and json.loads(body)["status"] == "unknown"

    run = manage("auto_recover", "--verbosity", "0", "--metrics-file", str(served.metrics), env=served.env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # cron mails nothing

    status, headers, body = served.get("/healthz/recovery")
    assert status == 200 and headers["content-type"] == "application/json"
    assert json.loads(body)["status"] == "ok"
    assert "tradeops_auto_recover_last_run_outcome" in served.metrics.read_text()


def test_the_api_answers_json_and_wants_credentials(served: Served) -> None:
    """Any wall clock: no sweep runs."""
    status, headers, body = served.get("/api/recovery/settings")
    assert status == 401 and headers["content-type"] == "application/json"
    assert "credentials" in json.loads(body)["detail"]
