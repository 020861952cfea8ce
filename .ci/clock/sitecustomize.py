"""Moves this Python process's wall clock by TRADEOPS_CLOCK_OFFSET_SECONDS (CI's clock runs).

CI puts this folder on PYTHONPATH, so every Python process of the run imports it at start:
pytest, and the manage.py, gunicorn and worker processes the tests start. Each moves its
wall clock by the same offset from the real one, so a process started later agrees with
one started earlier. time-machine moves only what reads the wall clock (time.time,
datetime.now, date.today, ...): sleeps, lock timeouts and monotonic time stay real, which
libfaketime's LD_PRELOAD does not keep (Python's timed lock waits never return under it).
The database servers and the browser are not Python and keep the real clock.

Unset or empty: nothing happens. Set but unusable, or time-machine missing: the process
stops with a message, rather than run at the real time while CI believes otherwise.
"""

import os
import sys
import time

ENV = "TRADEOPS_CLOCK_OFFSET_SECONDS"

_offset = os.environ.get(ENV, "").strip()
if _offset:
    try:
        _seconds = float(_offset)
        import time_machine
    except (ValueError, ImportError) as exc:
        sys.exit(f"{ENV}={_offset!r}: cannot move the clock ({exc})")
    # tick=True: time goes on at the real pace, but counted from the first read of the
    # clock, not from start(). Read it at once and shift by what that read shows, so that
    # every process runs at the real clock + offset to the microsecond, whenever it first
    # asks the time (a process that first asked after its imports ran seconds behind).
    _coordinates = time_machine.travel(time.time() + _seconds, tick=True).start()
    _moved = time.time()
    _coordinates.shift(time_machine.escape_hatch.time.time() + _seconds - _moved)
