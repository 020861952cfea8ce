"""/api/: the sweep trigger, the settings read and the OpenAPI schema."""

from __future__ import annotations

from django.urls import path
from rest_framework.renderers import JSONOpenAPIRenderer
from rest_framework.schemas import get_schema_view

from recovery.api.views import SettingsView, SweepView

app_name = "recovery_api"

urlpatterns = [
    path("recovery/sweep", SweepView.as_view(), name="sweep"),
    path("recovery/settings", SettingsView.as_view(), name="settings"),
    path(
        "schema",
        get_schema_view(
            title="tradeops API",
            description="Trigger the auto-recovery sweep; read its settings and gates.",
            version="1",
            renderer_classes=[JSONOpenAPIRenderer],
            public=True,
            urlconf="recovery.api.urls",
            url="/api/",
        ),
        name="schema",
    ),
]
