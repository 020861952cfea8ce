"""On-demand benchmark of tradeops on MariaDB (issue "Proof", part 5); not a test.

Run: .venv/bin/python -m bench.run [--orders N] [--audit N] [--stale N] [--json PATH]
"""
