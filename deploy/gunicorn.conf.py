# gunicorn's settings that must agree with the project's (deploy/tradeops.service passes
# this file with --config). The worker timeout is WEB_WORKER_TIMEOUT_SECONDS from the
# settings (.env), the same number check recovery.E010 keeps a request's sweep under.
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")

from django.conf import settings  # noqa: E402

timeout = int(settings.WEB_WORKER_TIMEOUT_SECONDS)
