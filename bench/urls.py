"""The project's URLs plus the stock admin site at /stock-admin/ (used via override_settings)."""

from django.urls import path

from bench.stock_admin import stock_site
from tradeops.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("stock-admin/", stock_site.urls),
    *project_urlpatterns,
]
