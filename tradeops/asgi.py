"""ASGI entry point for tradeops."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")

application = get_asgi_application()
