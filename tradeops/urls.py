from django.contrib import admin
from django.urls import include, path

from recovery.admin.status import recovery_status_view
from recovery.views import recovery_health

urlpatterns = [
    path("healthz/recovery", recovery_health, name="recovery_health"),
    path("api/", include("recovery.api.urls")),
    # Before admin.site.urls, so the admin's catch-all does not swallow it.
    path("admin/recovery/status/", admin.site.admin_view(recovery_status_view), name="recovery_status"),
    path("admin/", admin.site.urls),
]

# A refused admin page keeps the admin's layout and names the missing permission.
handler403 = "recovery.views.permission_denied"
