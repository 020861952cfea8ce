"""recovery.W004: with DEBUG off, `check` warns until the static files are collected."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core import checks
from django.core.management import call_command

from recovery.admin.checks import static_files_collected_check

PLAIN = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
MANIFEST = {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}


@pytest.fixture
def production(settings, tmp_path: Path) -> Path:  # noqa: ANN001
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "static"
    settings.STORAGES = {**settings.STORAGES, "staticfiles": PLAIN}
    settings.WHITENOISE_USE_FINDERS = False  # as in production: only STATIC_ROOT is served
    return settings.STATIC_ROOT


def _w004() -> list[str]:
    return [m.msg for m in checks.run_checks(tags=[checks.Tags.staticfiles]) if m.id == "recovery.W004"]


def test_debug_on_needs_no_collected_files(settings, tmp_path: Path) -> None:  # noqa: ANN001
    settings.DEBUG, settings.STATIC_ROOT = True, tmp_path / "empty"
    assert static_files_collected_check() == []


def test_nothing_collected_warns(production: Path) -> None:
    (warning,) = static_files_collected_check()
    assert warning.id == "recovery.W004" and warning.level == checks.WARNING
    assert warning.msg == (
        f"DEBUG is off and the static files are not collected in {production} (missing: admin/css/base.css)."
    )
    assert "collectstatic --noinput" in warning.hint
    assert len(_w004()) == 1  # registered: `manage.py check` runs it


def test_no_static_root_warns(production: Path, settings) -> None:  # noqa: ANN001
    settings.STATIC_ROOT = None
    (warning,) = static_files_collected_check()
    assert warning.id == "recovery.W004" and "STATIC_ROOT is not set" in warning.msg


def test_collected_files_silence_it(production: Path) -> None:
    call_command("collectstatic", "--noinput", verbosity=0)
    assert (production / "admin" / "css" / "base.css").is_file()
    assert static_files_collected_check() == [] and _w004() == []


def test_the_manifest_storage_needs_its_manifest_too(production: Path, settings) -> None:  # noqa: ANN001
    call_command("collectstatic", "--noinput", verbosity=0)  # plain copies: no staticfiles.json
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST}
    (warning,) = static_files_collected_check()
    assert "(missing: staticfiles.json)" in warning.msg


def test_whitenoise_serving_the_apps_folders_needs_only_a_manifest(production: Path, settings) -> None:  # noqa: ANN001
    settings.WHITENOISE_USE_FINDERS = True  # the test settings' way: no collectstatic before a test
    assert static_files_collected_check() == []
    settings.STORAGES = {**settings.STORAGES, "staticfiles": MANIFEST}
    (warning,) = static_files_collected_check()
    assert "(missing: staticfiles.json)" in warning.msg
