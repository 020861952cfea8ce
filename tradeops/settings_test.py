"""Settings for the test suite: the real settings with a throwaway key.

Everything else (DATABASE_URL included) comes from the environment exactly as in
production, so the same suite runs on SQLite and on MariaDB.
"""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "tests-only-not-a-secret")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")

from tradeops.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
