"""The gateway health file the backend reads before it sends a new order (rule 10b).

The backend's monitor writes `gateway_runtime_health.json` in the bridge root; its
new-order path refuses to trade while `state` is one of GATEWAY_BLOCK_STATES. Its retry
path, which sends our replacements, does not look, so the sweep does before it cancels an
order it means to re-place. A missing file blocks nothing (the backend reads its defaults);
a file that is there but cannot be read blocks re-placing here: it may be the monitor's
half-written "gateway_restarting", and an order left NEW for a minute costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HEALTH_FILENAME = "gateway_runtime_health.json"
GATEWAY_BLOCK_STATES = frozenset({"bridge_degraded", "gateway_degraded", "gateway_restarting", "gateway_hot"})
HEALTH_MAX_BYTES = 1_000_000

MSG_BLOCKED = "the gateway health file says {state!r}: the backend refuses new trades"
MSG_UNREADABLE = "the gateway health file {path} could not be read ({why}): it may block trades"


def gateway_block_text(health: Any) -> str | None:
    """Why the backend would refuse trades on this health payload, or None (as it reads it)."""
    if not isinstance(health, Mapping):
        return None
    state = str(health.get("state") or "").strip().lower()
    return MSG_BLOCKED.format(state=state) if state in GATEWAY_BLOCK_STATES else None


def gateway_block_read(root: Path) -> str | None:
    """Why re-placing must wait for the gateway, read from the health file now; None if it need not."""
    path = Path(root) / HEALTH_FILENAME
    try:
        with path.open("rb") as handle:
            raw = handle.read(HEALTH_MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return MSG_UNREADABLE.format(path=path, why=exc.strerror or type(exc).__name__)
    if len(raw) > HEALTH_MAX_BYTES:
        return MSG_UNREADABLE.format(path=path, why=f"larger than {HEALTH_MAX_BYTES} bytes")
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return MSG_UNREADABLE.format(path=path, why=f"not JSON: {str(exc)[:80]}")
    if not isinstance(payload, Mapping):
        return MSG_UNREADABLE.format(path=path, why="not a JSON object")
    return gateway_block_text(payload)
