"""CI's moved clock (.ci/clock): every Python process of a run at the real clock + one offset.

Any wall clock: each test compares a process's moved clock with the real one it reads
through time-machine's escape hatch, or checks the moments' days, whatever today is.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.conf import settings

pytestmark = pytest.mark.processes

CLOCK_DIR = Path(settings.BASE_DIR) / ".ci" / "clock"
ENV = "TRADEOPS_CLOCK_OFFSET_SECONDS"
OFFSET = 437_000  # five days and a bit
# Two reads of two clocks, one after the other, on a busy machine: a quarter second apart
# at the very most; the defect this guards against is a whole second off (the idle delay).
AGREE_SECONDS = 0.25
# What one process says: its moved clock less the real clock, after `delay` seconds idle.
LAG_PROBE = (
    "import time, time_machine\n"
    "time.sleep(float(__import__('sys').argv[1]))\n"
    "hatch = time_machine.escape_hatch\n"
    "real = hatch.time.time() if hatch.is_travelling() else time.time()\n"
    "print(time.time() - real)\n"
)


def real_now() -> datetime:
    """The real clock, also inside CI's moved-clock runs (which move this process too)."""
    hatch = time_machine.escape_hatch
    return hatch.datetime.datetime.now(UTC) if hatch.is_travelling() else datetime.now(UTC)


def python(*args: str, offset: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in (ENV, "PYTHONPATH")}
    if offset is not None:
        env.update({ENV: offset, "PYTHONPATH": str(CLOCK_DIR)})
    return subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("delay", ["0", "1.0"])
def test_a_process_is_moved_by_the_offset_whenever_it_first_reads_the_clock(delay: str) -> None:
    """A process that first reads the clock a second after it started is not a second behind."""
    done = python("-c", LAG_PROBE, delay, offset=str(OFFSET))
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(OFFSET, abs=AGREE_SECONDS)


def test_without_the_variable_nothing_moves() -> None:
    done = python("-c", LAG_PROBE, "0", offset=None)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) == pytest.approx(0, abs=AGREE_SECONDS)


def test_an_unusable_offset_stops_the_process_rather_than_run_at_the_real_clock() -> None:
    done = python("-c", "print('ran')", offset="five days")
    assert done.returncode != 0 and "ran" not in done.stdout
    assert f"{ENV}='five days': cannot move the clock" in done.stderr


@pytest.mark.parametrize(("kind", "weekday", "hour"), [("saturday", 5, 12), ("holiday", None, 11)])
def test_the_moments_lie_ahead_on_the_right_kind_of_day(kind: str, weekday: int | None, hour: int) -> None:
    before = real_now()
    done = python(str(CLOCK_DIR / "moment.py"), kind, offset=None)
    assert done.returncode == 0, done.stderr
    offset = int(done.stdout)
    assert timedelta(0) < timedelta(seconds=offset) < timedelta(days=400)
    # The moment as the script meant it, read back through the real clock of this process.
    moment = (before + timedelta(seconds=offset)).astimezone(ZoneInfo("America/New_York"))
    assert moment.hour in (hour - 1, hour)  # the seconds between `before` and the script's now
    if weekday is not None:
        assert moment.weekday() == weekday
    else:
        assert moment.weekday() < 5 and "clock moved to" in done.stderr


def test_moment_refuses_an_unknown_kind() -> None:
    done = python(str(CLOCK_DIR / "moment.py"), "sunday", offset=None)
    assert done.returncode != 0 and "usage: moment.py {saturday|holiday}" in done.stderr
