""".ci/system-packages, which make test and CI run: one line when all is there, the exact command when not.

Any wall clock: the script reads no time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from django.conf import settings

pytestmark = pytest.mark.processes

SCRIPT = Path(settings.BASE_DIR) / ".ci" / "system-packages"
ALL_GROUPS = ("python", "mysqlclient", "tests")
EXPECTED = (
    "python3-venv python3-dev gcc pkg-config default-libmysqlclient-dev mariadb-client chromium prometheus"
)


def run(*groups: str, installed: bool) -> subprocess.CompletedProcess[str]:
    """The script with a stand-in dpkg-query, as a user who is not root."""
    with tempfile.TemporaryDirectory(prefix="tradeops-fake-dpkg-") as folder:
        fake = Path(folder)
        fake.chmod(0o755)  # readable by nobody (pytest's own tmp_path is not)
        status = "printf 'install ok installed'" if installed else "exit 1"
        (fake / "dpkg-query").write_text(f"#!/bin/sh\n{status}\n")
        (fake / "dpkg-query").chmod(0o755)
        # A copy beside it: the checkout's folders need not be readable by nobody.
        script = fake / SCRIPT.name
        shutil.copy(SCRIPT, script)
        script.chmod(0o755)
        command = ["bash", str(script), *groups]
        if os.geteuid() == 0:
            runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
            if runuser is None:
                pytest.skip("running as root without runuser: cannot show the non-root path")
            command = [runuser, "-u", "nobody", "--", *command]
        return subprocess.run(
            command,
            capture_output=True,
            text=True,
            env={"PATH": f"{fake}:/usr/bin:/bin"},
            cwd="/",
            timeout=60,
        )


def test_everything_present_is_one_line_and_exit_0() -> None:
    result = run(*ALL_GROUPS, installed=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"system packages present: {EXPECTED}\n"


def test_missing_packages_without_root_print_the_exact_command() -> None:
    result = run("mysqlclient", installed=False)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "missing system packages: gcc pkg-config default-libmysqlclient-dev",
        "run as root (or with sudo), then again: apt-get update && "
        "apt-get install -y gcc pkg-config default-libmysqlclient-dev",
    ]


@pytest.mark.parametrize("groups", [(), ("nonsense",)])
def test_no_or_unknown_group_is_a_usage_error(groups: tuple[str, ...]) -> None:
    result = run(*groups, installed=True)
    assert result.returncode == 2 and "groups: " in result.stderr
