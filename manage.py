#!/usr/bin/env python
"""Django's command-line utility for tradeops."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # Bad configuration (a missing SECRET_KEY, a malformed DATABASE_URL) is an
        # operator error: one line for cron mail, exit 2 ("could not run").
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
