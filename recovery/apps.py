from django.apps import AppConfig


class RecoveryConfig(AppConfig):
    name = "recovery"
    verbose_name = "Order recovery"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from recovery.admin import checks as admin_checks  # noqa: F401  (registers the static files check)
        from recovery.db import checks  # noqa: F401  (registers the schema check)
        from recovery.ops import checks as serving_checks  # noqa: F401  (the request budget)
