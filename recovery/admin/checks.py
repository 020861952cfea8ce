"""A system check: with DEBUG off, the admin's static files must have been collected.

Without them every admin page is a 500 (the manifest storage cannot name a file it never
collected), and nothing said so before the first page was asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin, staticfiles_storage
from django.core import checks

# A file collectstatic always copies (from django.contrib.admin): there, the rest is too.
ADMIN_CSS = Path("admin") / "css" / "base.css"
MSG_NO_STATIC_ROOT = "DEBUG is off and STATIC_ROOT is not set: the admin's static files have nowhere to be."
MSG_NOT_COLLECTED = "DEBUG is off and the static files are not collected in {root} (missing: {missing})."
HINT_COLLECT = (
    "Run `manage.py collectstatic --noinput` (with the same STATIC_ROOT) after every deploy; "
    "until then every admin page answers 500."
)


@checks.register(checks.Tags.staticfiles)
def static_files_collected_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.DEBUG:
        return []  # runserver serves them from the apps' folders
    # WHITENOISE_USE_FINDERS (the test settings): WhiteNoise serves the apps' folders too;
    # a manifest storage still needs its manifest, which only collectstatic writes.
    finders = getattr(settings, "WHITENOISE_USE_FINDERS", False)
    wanted = [] if finders else [ADMIN_CSS]
    if isinstance(staticfiles_storage, ManifestFilesMixin):
        wanted.append(Path(staticfiles_storage.manifest_name))
    if not wanted:
        return []
    if not settings.STATIC_ROOT:
        return [checks.Warning(MSG_NO_STATIC_ROOT, hint=HINT_COLLECT, id="recovery.W004")]
    root = Path(settings.STATIC_ROOT)
    missing = [str(name) for name in wanted if not (root / name).is_file()]
    if not missing:
        return []
    message = MSG_NOT_COLLECTED.format(root=root, missing=", ".join(missing))
    return [checks.Warning(message, hint=HINT_COLLECT, id="recovery.W004")]
