"""How operations see runs: heartbeat runs, health, metrics, the status page, roles."""
