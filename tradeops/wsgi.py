"""WSGI entry point for tradeops."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradeops.settings")

application = get_wsgi_application()
