"""The sweep's clock: what each write is stamped with, and what re-checks under a lock use.

A sweep decides at `start` (its `now`: the command's or the admin's, or a test's), but it
writes for many seconds after: each cancel, replacement and audit row carries the moment
of its own write, never the sweep's start (a replacement stamped 18 s back would look 18 s
stale to the next sweep). The clock moves from `start` at the pace of real (monotonic)
time; where `start` is the wall clock, that is the wall clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class SweepClock:
    start: datetime
    origin: float = field(default_factory=time.monotonic)

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=time.monotonic() - self.origin)
