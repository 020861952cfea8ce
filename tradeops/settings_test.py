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
# Pages render without a collectstatic manifest (test_serving.py runs the real storage).
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
# Per process, emptied by the tests that count requests.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Generous: only test_api.py's rate-limit test lowers them.
RECOVERY_API_SWEEP_RATE = "1000/min"
RECOVERY_API_READ_RATE = "1000/min"
# Static files from the apps' folders, as with DEBUG on: no collectstatic before a test.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
