"""Settings for tradeops, read from the environment (django-environ).

Every variable is listed, with a comment, in .env.example (local work) and in
deploy/production.env.example (a server). A ``.env`` file next to manage.py is read
when present; the real environment wins over it. Every relative path, the SQLite
database's included, counts from the repository, so cron needs no working directory.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

# django-environ knows mysql:// but not mariadb://; both mean Django's MySQL backend.
environ.Env.DB_SCHEMES.setdefault("mariadb", "django.db.backends.mysql")

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)


def _from_repo(path: Path) -> Path:
    """Relative paths count from the repository (BASE_DIR), never from the working directory."""
    return path if path.is_absolute() else BASE_DIR / path


def _path(var: str, default: Path) -> Path:
    """A file or folder from the environment (cron runs from anywhere)."""
    return _from_repo(Path(env.str(var, default=str(default))))


def _path_map(var: str) -> tuple[tuple[str, str], ...]:
    """Prefix pairs mapping the backend's paths to this host's mounts (pure parser, no app import)."""
    from recovery.gates.evidence_read import path_map_parse

    try:
        return path_map_parse(env.str(var, default=""))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{var}: {exc}") from None


SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off; set it in the environment "
            "or in .env (see .env.example)"
        )
    SECRET_KEY = "django-insecure-local-development-only"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # First, so its templates (admin/index.html with the status link) come before the admin's.
    "recovery",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "axes",
]

MIDDLEWARE = [
    # Outermost, so it sees every answer under /api/: an error page there becomes JSON.
    "recovery.api.errors.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files straight from gunicorn: no separate file server to keep in step.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "tradeops.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "tradeops.wsgi.application"


SUPPORTED_DB_SCHEMES = {
    "sqlite": "django.db.backends.sqlite3",
    "mysql": "django.db.backends.mysql",
    "mariadb": "django.db.backends.mysql",
}


WEAK_SSL_MODES = {"PREFERRED", "REQUIRED"}
MSG_WEAK_SSL_MODE = (
    "ssl_mode REQUIRED or PREFERRED does not enforce TLS with this MySQL driver; "
    "use ssl_mode=VERIFY_IDENTITY (or VERIFY_CA) with ssl_ca=<the server's CA file>"
)


def _database(var: str, default: str | None) -> dict:
    """One DATABASES entry from a URL variable, with a one-line error when it is bad."""
    raw = env.str(var, default=default)
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if SUPPORTED_DB_SCHEMES.get(scheme) is None:
        raise ImproperlyConfigured(
            f"{var} must start with sqlite://, mysql:// or mariadb:// (got {scheme or raw!r})"
        )
    try:
        config = environ.Env.db_url_config(raw)
    except Exception as exc:  # django-environ raises bare ValueError/KeyError on odd URLs
        raise ImproperlyConfigured(f"{var} is not a usable database URL: {exc}") from None
    if config.get("ENGINE") != SUPPORTED_DB_SCHEMES[scheme] or not config.get("NAME"):
        raise ImproperlyConfigured(f"{var} names no database: {raw!r}")
    if config["ENGINE"] == "django.db.backends.sqlite3" and config["NAME"] != ":memory:":
        # sqlite:///var/x.sqlite3 is var/x.sqlite3 in the repository, wherever cron starts.
        config["NAME"] = str(_from_repo(Path(config["NAME"])))
    if config["ENGINE"] == "django.db.backends.mysql":
        options = config.setdefault("OPTIONS", {})
        options.setdefault("charset", "utf8mb4")
        # STRICT: never let MySQL silently truncate a client_order_id or a price.
        options.setdefault("init_command", "SET sql_mode='STRICT_TRANS_TABLES'")
        # TLS: ?ssl_mode=VERIFY_IDENTITY&ssl_ca=/path/ca.pem in the URL. The driver takes the
        # mode as it is and the files as one `ssl` dict, which a URL cannot spell. Built on
        # MariaDB's client library (Debian's), mysqlclient lets REQUIRED fall back to plain
        # text when the server offers no TLS; only the VERIFY_ modes are enforced.
        if str(options.get("ssl_mode", "")).upper() in WEAK_SSL_MODES:
            raise ImproperlyConfigured(f"{var}: {MSG_WEAK_SSL_MODE}")
        tls = {key[4:]: options.pop(key) for key in ("ssl_ca", "ssl_cert", "ssl_key") if key in options}
        if tls:
            options["ssl"] = tls
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
    return config


# The default is built from BASE_DIR: a relative path would break under cron.
DATABASES = {
    "default": _database("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'tradeops.sqlite3'}"),
}
if sys.argv[1:2] == ["migrate"] and env.str("MIGRATE_DATABASE_URL", default=""):
    # `manage.py migrate`, and nothing else, connects with the migration account: the DDL
    # on Django's database stays out of the account the service and cron run on.
    _migrate = _database("MIGRATE_DATABASE_URL", None)
    if (_migrate["ENGINE"], _migrate["NAME"]) != (
        DATABASES["default"]["ENGINE"],
        DATABASES["default"]["NAME"],
    ):
        raise ImproperlyConfigured("MIGRATE_DATABASE_URL must name the database of DATABASE_URL")
    DATABASES["default"] = _migrate
if env.str("TRADING_DATABASE_URL", default=""):
    # The trading tables live elsewhere; Django's own tables stay on DATABASE_URL.
    DATABASES["trading"] = _database("TRADING_DATABASE_URL", None)

# --- database timeouts (MySQL/MariaDB) ----------------------------------------------
# A server that hangs (a network partition) must fail a run in seconds, not minutes: a
# sweep that loses its connection stops at once, and these bound how long "lost" takes
# to show. The client library retries a timed-out read or write, so a hung server is
# noticed within about three times DATABASE_READ/WRITE_TIMEOUT_SECONDS. 0 = no timeout.
DATABASE_CONNECT_TIMEOUT_SECONDS = env.int("DATABASE_CONNECT_TIMEOUT_SECONDS", default=5)
DATABASE_READ_TIMEOUT_SECONDS = env.int("DATABASE_READ_TIMEOUT_SECONDS", default=15)
DATABASE_WRITE_TIMEOUT_SECONDS = env.int("DATABASE_WRITE_TIMEOUT_SECONDS", default=15)
for _database_entry in DATABASES.values():
    if _database_entry["ENGINE"] == "django.db.backends.mysql":
        for _option, _seconds in (
            ("connect_timeout", DATABASE_CONNECT_TIMEOUT_SECONDS),
            ("read_timeout", DATABASE_READ_TIMEOUT_SECONDS),
            ("write_timeout", DATABASE_WRITE_TIMEOUT_SECONDS),
        ):
            if _seconds > 0:
                _database_entry.setdefault("OPTIONS", {}).setdefault(_option, _seconds)
# ---------------------------------------------------------------------------------------

DATABASE_ROUTERS = ["recovery.db.routers.TradingRouter"]
# Grow DATABASES above this line (per-alias OPTIONS belong in _database); everything
# below reads the finished dict.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Database datetimes are naive UTC (the backend writes utcnow()); TIME_ZONE is for display.
USE_TZ = True
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
# One date format on every admin page (tradeops/formats/en/formats.py).
FORMAT_MODULE_PATH = ["tradeops.formats"]

STATIC_URL = "static/"
STATIC_ROOT = _path("STATIC_ROOT", BASE_DIR / "var" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Hashed, compressed copies from collectstatic, served by WhiteNoise with far-future
    # cache headers; with DEBUG on, the plain names are used and no collectstatic is needed.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Per-host cache: the API's rate limits, shared by the gunicorn workers of one host.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(_path("CACHE_DIR", BASE_DIR / "var" / "cache")),
    }
}

# --- logins: the admin can cancel and re-place live orders ---------------------------
# A session ends after a working day, and when the browser closes.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env.bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
AUTHENTICATION_BACKENDS = [
    # django-axes first: it refuses a locked-out username/IP before any password check.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Locked after this many failed logins for the same username from the same address,
# for AXES_COOLOFF_MINUTES; `manage.py axes_reset_username NAME` unlocks at once.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = dt.timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "tradeops.client_ip.client_ip"
# The lockout page: in the admin's layout, saying how long it lasts (recovery/views.py).
AXES_LOCKOUT_CALLABLE = "recovery.views.login_lockout"

# --- production hardening (manage.py check --deploy) -------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# nginx (deploy/nginx-tradeops.conf) terminates TLS and sets X-Forwarded-Proto and X-Real-IP.
BEHIND_TLS_PROXY = env.bool("BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Uptime checkers may ask gunicorn on loopback directly, over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz/"]

# --- the HTTP API for machines (recovery/api) ------------------------------------------
REST_FRAMEWORK = {
    # Tokens for scripts (no CSRF: nothing a browser sends on its own); sessions for
    # browsers, with Django's CSRF check enforced by DRF's SessionAuthentication.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON only (anything else is 415), and small (413).
    "DEFAULT_PARSER_CLASSES": ["recovery.api.parsers.BoundedJSONParser"],
    # A database that cannot be reached is 503 JSON, naming which one.
    "EXCEPTION_HANDLER": "recovery.api.errors.api_exception_handler",
}
# Requests per user: a sweep trigger, and a read of the settings and gates.
RECOVERY_API_SWEEP_RATE = env.str("RECOVERY_API_SWEEP_RATE", default="6/min")
RECOVERY_API_READ_RATE = env.str("RECOVERY_API_READ_RATE", default="60/min")

# --- the trading side ---------------------------------------------------------------
# Folder where the Lean bridge writes quotes.json and open_orders.json.
LEAN_BRIDGE_ROOT = _path("LEAN_BRIDGE_ROOT", BASE_DIR / "var" / "bridge")
BRIDGE_QUOTES_MAX_AGE_SECONDS = env.int("BRIDGE_QUOTES_MAX_AGE_SECONDS", default=60)
BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS = env.int("BRIDGE_OPEN_ORDERS_MAX_AGE_SECONDS", default=30)
# Broker evidence: the backend's paths (run output folders) as this host mounts them,
# "/backend/prefix=/local/prefix[,...]"; and how far back execution_events.jsonl is read.
BRIDGE_PATH_MAP = _path_map("BRIDGE_PATH_MAP")
BRIDGE_EVENTS_MAX_READ_BYTES = env.int("BRIDGE_EVENTS_MAX_READ_BYTES", default=64 * 1024 * 1024)
BRIDGE_EVENTS_CLOCK_SKEW_SECONDS = env.int("BRIDGE_EVENTS_CLOCK_SKEW_SECONDS", default=300)
# Rule 1c: past this many seconds between the database's clock and this host's, a run
# changes nothing (ages would be wrong by as much).
AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS = env.float("AUTO_RECOVER_CLOCK_TOLERANCE_SECONDS", default=5.0)
# No order is cancelled more than this many seconds after the reads its decision rests on
# (broker files, halts, blackout, the IB probe): past it, the run reads again.
AUTO_RECOVER_FRESH_SECONDS = env.float("AUTO_RECOVER_FRESH_SECONDS", default=5.0)
# The API's and the admin's time budget for one sweep (the command's is --max-seconds),
# and the web server's worker timeout (deploy/gunicorn.conf.py reads it from here): check
# recovery.E010 keeps the budget, plus the order in flight and the closing writes, under it.
RECOVERY_API_MAX_SECONDS = env.float("RECOVERY_API_MAX_SECONDS", default=50.0)
WEB_WORKER_TIMEOUT_SECONDS = env.int("WEB_WORKER_TIMEOUT_SECONDS", default=150)
# Used only when ib_settings has no row.
IB_HOST = env.str("IB_HOST", default="127.0.0.1")
IB_PORT = env.int("IB_PORT", default=7497)
IB_PROBE_TIMEOUT_SECONDS = env.float("IB_PROBE_TIMEOUT_SECONDS", default=1.0)
# Where the command keeps its lock file on SQLite (MySQL uses GET_LOCK).
AUTO_RECOVER_LOCK_DIR = _path("AUTO_RECOVER_LOCK_DIR", BASE_DIR / "var")

# Heartbeat rows (tradeops_sweep_runs) older than this are pruned by auto_recover.
RECOVERY_HEARTBEAT_RETENTION_DAYS = env.int("RECOVERY_HEARTBEAT_RETENTION_DAYS", default=14)
# Each order's decision history (tradeops_order_decisions): a row not given again for this
# many days is pruned by the sweep, a batch per run.
RECOVERY_HISTORY_RETENTION_DAYS = env.int("RECOVERY_HISTORY_RETENTION_DAYS", default=30)
# /healthz/recovery answers 503 when the last command run is older than this.
RECOVERY_HEALTH_MAX_AGE_SECONDS = env.int("RECOVERY_HEALTH_MAX_AGE_SECONDS", default=180)
# Health stays ok through this many minutes of runs that were blocked, had the breaker
# open or ran over their time budget (one such run is not yet an alarm); past it, not ok.
RECOVERY_HEALTH_DEGRADED_MINUTES = env.int("RECOVERY_HEALTH_DEGRADED_MINUTES", default=5)

# --- logging: everything to stderr, which systemd's journal (or cron's mail) keeps ----------
# LOG_FORMAT=json writes one JSON object a line (python-json-logger), traceback included,
# for a journal that is shipped to a log store; text is one line a record.
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
LOG_FORMATTERS = {
    "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    "json": {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    },
}
if LOG_FORMAT not in LOG_FORMATTERS:
    raise ImproperlyConfigured(f"LOG_FORMAT must be text or json (got {LOG_FORMAT!r})")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"require_debug_false": {"()": "django.utils.log.RequireDebugFalse"}},
    "formatters": {"line": LOG_FORMATTERS[LOG_FORMAT]},
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "line"},
        # Django's own: mails ADMINS when there are any (none by default), DEBUG off only.
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "loggers": {
        "recovery": {
            "handlers": ["stderr"],
            "level": env.str("RECOVERY_LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
        # A server error (an unhandled exception in a view: a 500) with its traceback.
        # Django alone only mails it to ADMINS with DEBUG off, and prints nothing.
        "django.request": {"handlers": ["stderr", "mail_admins"], "level": "ERROR", "propagate": False},
    },
}
