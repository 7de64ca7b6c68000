"""Django settings for oneapi, driven by one-api's environment variables."""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from oneapi_site.config import (
    DEFAULT_TRUSTED_PROXIES,
    ConfigError,
    env,
    parse_allowed_hosts,
    parse_sql_dsn,
    parse_trusted_proxies,
    read_dotenv,
)
from providers import outbound_proxy

BASE_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("oneapi")

read_dotenv(BASE_DIR / ".env")

try:
    DEBUG = env.bool("DEBUG", False)
    PORT = env.int("PORT", 3000, minimum=1)
    SQLITE_PATH = env.str("SQLITE_PATH", str(BASE_DIR / "data" / "oneapi.db"))
    DATABASE = parse_sql_dsn(env.str("SQL_DSN", ""), sqlite_path=SQLITE_PATH)
    REDIS_CONN_STRING = env.str("REDIS_CONN_STRING", "")
    MEMORY_CACHE_ENABLED = env.bool("MEMORY_CACHE_ENABLED", False)
    SYNC_FREQUENCY = env.int("SYNC_FREQUENCY", 600, minimum=1)
    BATCH_UPDATE_ENABLED = env.bool("BATCH_UPDATE_ENABLED", False)
    BATCH_UPDATE_INTERVAL = env.int("BATCH_UPDATE_INTERVAL", 5, minimum=1)
    INITIAL_ROOT_TOKEN = env.str("INITIAL_ROOT_TOKEN", "")
    INITIAL_ROOT_ACCESS_TOKEN = env.str("INITIAL_ROOT_ACCESS_TOKEN", "")
    RELAY_TIMEOUT = env.int("RELAY_TIMEOUT", 0)
    # Upstream calls go through this proxy (http://, https://, socks5://, socks5h://) unless a channel has its own.
    RELAY_PROXY = outbound_proxy.check(env.str("RELAY_PROXY", ""), name="RELAY_PROXY")
    GLOBAL_API_RATE_LIMIT = env.int("GLOBAL_API_RATE_LIMIT", 480, minimum=1)
    GLOBAL_WEB_RATE_LIMIT = env.int("GLOBAL_WEB_RATE_LIMIT", 240, minimum=1)
    # Request bodies, in MB, refused by the server before they are buffered (oneapi_site/body_limit.py).
    # The relay takes audio files (OpenAI allows 25 MB) and images inside messages; /api and pages take forms.
    RELAY_MAX_BODY_MB = env.int("RELAY_MAX_BODY_MB", 32, minimum=1)
    API_MAX_BODY_MB = env.int("API_MAX_BODY_MB", 2, minimum=1)
    WEB_MAX_BODY_MB = env.int("WEB_MAX_BODY_MB", 2, minimum=1)
    # Fetching images that clients' messages point at (for vendors that need them inline).
    USER_CONTENT_REQUEST_TIMEOUT = env.int("USER_CONTENT_REQUEST_TIMEOUT", 30, minimum=1)
    USER_CONTENT_ALLOW_PRIVATE = env.bool("USER_CONTENT_ALLOW_PRIVATE", False)
    # Their bounds (providers/adapters/inline_images.py): per request, images (data: URLs included),
    # their bytes together and fetches at once; per process, the bytes all requests' images hold and the
    # fetches at once, and how long a fetch waits for room before the request is answered 503.
    USER_CONTENT_MAX_IMAGES = env.int("USER_CONTENT_MAX_IMAGES", 20, minimum=1)
    USER_CONTENT_MAX_BYTES = env.int("USER_CONTENT_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
    USER_CONTENT_CONCURRENCY = env.int("USER_CONTENT_CONCURRENCY", 4, minimum=1)
    USER_CONTENT_PROCESS_MAX_BYTES = env.int("USER_CONTENT_PROCESS_MAX_BYTES", 128 * 1024 * 1024, minimum=1)
    USER_CONTENT_PROCESS_MAX_FETCHES = env.int("USER_CONTENT_PROCESS_MAX_FETCHES", 32, minimum=1)
    USER_CONTENT_QUEUE_TIMEOUT = env.int("USER_CONTENT_QUEUE_TIMEOUT", 10, minimum=0)
    if USER_CONTENT_PROCESS_MAX_BYTES < USER_CONTENT_MAX_BYTES:
        # Else one request's images could never fit, and would always be answered 503.
        raise ConfigError(f"USER_CONTENT_PROCESS_MAX_BYTES ({USER_CONTENT_PROCESS_MAX_BYTES}) must be at least "
                          f"USER_CONTENT_MAX_BYTES ({USER_CONTENT_MAX_BYTES})")
    CHANNEL_TEST_FREQUENCY = env.int("CHANNEL_TEST_FREQUENCY", 0)  # minutes; 0 = off
    KEY_PROBE_INTERVAL = env.int("KEY_PROBE_INTERVAL", 60, minimum=0)  # seconds between dead-key probes; 0 = off
    POLLING_INTERVAL = env.int("POLLING_INTERVAL", 0)  # seconds between channels in test-all
    TEST_PROMPT = env.str(
        "TEST_PROMPT", "Output only your specific model name with no additional text."
    )
    SESSION_SECRET = env.str("SESSION_SECRET", "")
    # Peers whose X-Forwarded-For names the client (oneapi_site/proxy.py); per-IP limits and token IP
    # allow-lists key on that address. Empty by default (no proxy believed): set it to the proxy's address.
    TRUSTED_PROXIES = parse_trusted_proxies(env.str("TRUSTED_PROXIES", DEFAULT_TRUSTED_PROXIES))
    # GET /metrics (oneapi_site/metrics_page.py): a scraper sends METRICS_TOKEN as a bearer token, or comes
    # from METRICS_ALLOWED_IPS (IPs or CIDRs); with neither the page is not there and nothing is recorded.
    METRICS_TOKEN = env.str("METRICS_TOKEN", "").strip()
    METRICS_ALLOWED_IPS = parse_trusted_proxies(env.str("METRICS_ALLOWED_IPS", ""), name="METRICS_ALLOWED_IPS")
    # Cloudflare Turnstile's siteverify (accounts/turnstile.py); tests point it at a local mock.
    TURNSTILE_VERIFY_URL = env.str("TURNSTILE_VERIFY_URL",
                                   "https://challenges.cloudflare.com/turnstile/v0/siteverify")
    DATA_DIR = Path(env.str("DATA_DIR", str(Path(SQLITE_PATH).resolve().parent)))
    ALLOWED_HOSTS = parse_allowed_hosts(env.str("ALLOWED_HOSTS", ""))
    if SESSION_SECRET == "random_string":
        raise ConfigError("SESSION_SECRET must not be the placeholder 'random_string'")
except (ConfigError, outbound_proxy.ProxyInvalid) as exc:
    raise ImproperlyConfigured(str(exc)) from None


def _session_secret() -> str:
    """Use SESSION_SECRET, else a secret generated once and kept in the data folder."""
    if SESSION_SECRET:
        return SESSION_SECRET
    path = DATA_DIR / "session_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.write_text(value)
    path.chmod(0o600)
    log.warning("SESSION_SECRET is not set: generated one and kept it in %s", path)
    return value


SECRET_KEY = _session_secret()
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# No SECURE_PROXY_SSL_HEADER: Django would take X-Forwarded-Proto from any client. The scheme a trusted proxy
# (TRUSTED_PROXIES) reports is put in the ASGI scope by oneapi_site/proxy.py, and request.scheme reads it there.
# Django's own cap on a form or JSON body it reads, no lower than the server's limits above.
DATA_UPLOAD_MAX_MEMORY_SIZE = max(API_MAX_BODY_MB, WEB_MAX_BODY_MB) * 1024 * 1024

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "accounts",
    "billing",
    "providers",
    "relay",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "accounts.middleware.SecureCookieMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "oneapi_site.middleware.NulQueryMiddleware",  # after the language is chosen: its refusal is translated
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.DefaultPasswordMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oneapi_site.middleware.GlobalRateLimitMiddleware",
    "oneapi_site.middleware.FreshOptionsMiddleware",
]

ROOT_URLCONF = "oneapi_site.urls"
ASGI_APPLICATION = "oneapi_site.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "oneapi_site.context.site",
            ],
        },
    },
]


def _databases() -> dict:
    db = DATABASE
    if db.engine == "sqlite":
        Path(db.name).resolve().parent.mkdir(parents=True, exist_ok=True)
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": db.name,
            # Billing flushes write from a background thread while requests read.
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE",
                        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
            # A file, not shared-cache memory: the ledger writes from its own thread, and
            # shared-cache SQLite answers "table is locked" instead of waiting.
            "TEST": {"NAME": env.str("SQLITE_TEST_PATH", "")
                     or os.path.join(tempfile.gettempdir(), f"oneapi_test_{os.getpid()}.db")},
        }
    if db.engine == "postgresql":
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": db.name,
            "USER": db.user,
            "PASSWORD": db.password,
            "HOST": db.host,
            "PORT": db.port,
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    options = {"charset": "utf8mb4"}
    if db.host.startswith("/"):
        options["unix_socket"] = db.host
    return {
        "ENGINE": "django.db.backends.mysql",
        "NAME": db.name,
        "USER": db.user,
        "PASSWORD": db.password,
        "HOST": "" if db.host.startswith("/") else db.host,
        "PORT": db.port,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": options,
        "TEST": {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"},
    }


DATABASES = {"default": _databases()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"
# MariaDB makes no index on an expression, so the case-insensitive username constraint (accounts.User) is not
# created there; its collation already compares names without case, so the warning at every start says nothing.
SILENCED_SYSTEM_CHECKS = ["models.W044"]

if REDIS_CONN_STRING:
    def _redis_cache(fallback: str) -> dict:
        """Pages and /api keep working while Redis is down (oneapi_site/redis_cache.py says how)."""
        return {
            "BACKEND": "oneapi_site.redis_cache.ResilientRedisCache",
            "LOCATION": REDIS_CONN_STRING,
            "KEY_PREFIX": "oneapi",
            # Short timeouts: an unreachable Redis must not hold a request for the OS's minutes.
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient", "FALLBACK": fallback,
                        "SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
        }

    CACHES = {"default": _redis_cache("memory"), "sessions": _redis_cache("none")}
    SESSION_CACHE_ALIAS = "sessions"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Sessions on the server (shared cache in front of the database): logging out, a password change or an
# admin's disable ends a session everywhere, which a signed cookie cannot promise until it expires.
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_NAME = "session"
SESSION_COOKIE_AGE = 30 * 24 * 3600

# Django's hashers, the first making new hashes, and last the bcrypt of passwords imported from one-api
# (accounts/hashers.py): such a hash is replaced by the first hasher's on its first successful sign-in.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
    "accounts.hashers.OneAPIBCryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LOGIN_URL = "login"
TIME_ZONE = env.str("TZ", "UTC") or "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.api.authentication.AccessTokenAuthentication",
        "accounts.api.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["oneapi_site.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "oneapi_site.api.envelope_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

RATELIMIT_USE_CACHE = "default"
# key="ip" reads REMOTE_ADDR, which oneapi_site.proxy has set to the client behind any trusted proxy.
RATELIMIT_VIEW = "oneapi_site.middleware.ratelimited_view"

# GitHub sign-in (accounts/oauth.py): the OAuth host and the API host; tests point both at a local mock.
GITHUB_OAUTH_BASE = "https://github.com"
GITHUB_API_BASE = "https://api.github.com"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {"refused_request": {"()": "oneapi_site.lib.log_filters.RefusedRequest"},
                "refusal_without_traceback": {"()": "oneapi_site.lib.log_filters.RefusalWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "DEBUG" if DEBUG else "INFO"},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.request": {"filters": ["refusal_without_traceback"]},
        # Requests Django refuses with a 400 (oversized forms, a Host outside ALLOWED_HOSTS, a console URL asking
        # for a field or lookup the page does not offer) are the client's doing, yet Django logs them at ERROR
        # with a traceback; a warning line says enough.
        **{f"django.security.{name}": {"filters": ["refused_request"]}
           for name in ("RequestDataTooBig", "TooManyFieldsSent", "TooManyFilesSent", "DisallowedHost",
                        "DisallowedModelAdminToField", "DisallowedModelAdminLookup")},
    },
}
