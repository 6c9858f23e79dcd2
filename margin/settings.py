"""Margin settings: 12-factor, every value from the environment with a development default.

Production: DJANGO_SETTINGS_MODULE=margin.settings_production (requires SECRET_KEY etc.).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("MARGIN_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite cannot create its file's folder


def env_bool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_number(name, default, kind=int):
    """A number from the environment; a bad value stops start-up with the variable's name."""
    value = os.environ.get(name, str(default))
    try:
        number = kind(value)
    except ValueError:
        wanted = "a whole number" if kind is int else "a number"
        raise ImproperlyConfigured(f"{name} must be {wanted}, got {value!r}") from None
    if number < 0:
        raise ImproperlyConfigured(f"{name} must not be negative, got {value!r}")
    return number


def env_list(name, default):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Development only: margin.settings_production refuses to start with it.
DEVELOPMENT_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    "margin.apps.MarginAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "margin",
    "annotation",
    "rewardmodel",
    "rlhf",
    "dataio",
    "dashboard",
    "axes",  # login rate limiting (below)
    "csp",  # Content-Security-Policy header (below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "margin.middleware.SessionIdleTimeoutMiddleware",  # after auth: renews signed-in sessions
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "margin.middleware.HtmxSessionExpiredMiddleware",  # after HtmxMiddleware: reads request.htmx
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the lockout page
]

ROOT_URLCONF = "margin.urls"

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
            ],
        },
    },
]

WSGI_APPLICATION = "margin.wsgi.application"

# SQLite in WAL mode by default; PostgreSQL (or anything dj-database-url knows) via DATABASE_URL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'margin.sqlite3'}",
        # Seconds a connection is kept between requests; on PostgreSQL 60 halves the server CPU
        # per request (bench/load.py --conn-max-age). Health checks drop a connection that died.
        conn_max_age=env_number("MARGIN_DB_CONN_MAX_AGE", 0),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Django's backend with a fair wait for the write lock (margin/sqlite/base.py says why).
    DATABASES["default"]["ENGINE"] = "margin.sqlite"
    DATABASES["default"]["OPTIONS"] = {
        # IMMEDIATE takes the write lock when a transaction starts, so check-then-insert
        # (assignment capacity) cannot interleave; writers wait up to `timeout` seconds
        # instead of failing with "database is locked".
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file (not :memory:) so live-server threads and worker processes share it; one per
    # test run so parallel runs do not trample each other.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "annotation:home"
LOGOUT_REDIRECT_URL = "login"

# A session unused for this long ends (sliding: margin.middleware renews it while in use). An
# htmx submit after that gets a 401 and keeps the annotator's answer on the page.
MARGIN_SESSION_IDLE_MINUTES = env_number("MARGIN_SESSION_IDLE_MINUTES", 60)
SESSION_COOKIE_AGE = MARGIN_SESSION_IDLE_MINUTES * 60

# --- Content-Security-Policy (django-csp) ------------------------------------------------------
# Only our own files run: no inline script, style or handler (templates keep data in
# json_script blocks and data- attributes; htmx's inline indicator style is off in base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

# --- Login rate limiting (django-axes) ------------------------------------------------------------
# The axes backend goes first: it refuses a locked-out login before the password is checked.
# It needs the request, so code that authenticates must pass it (`authenticate(request, ...)`;
# in tests `client.force_login(user)`, or `client.login(request=HttpRequest(), ...)`).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_number("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_number("AXES_COOLOFF_MINUTES", 15))
# Username and address together: a guesser locks out that account from that address, and
# cannot lock a colleague out from elsewhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
# Behind reverse proxies every request comes from the nearest proxy's address: set this to the
# number of proxies in front of the app, and the address the outermost one saw is used. Left at
# 0, X-Forwarded-For is ignored (a client could write anything there).
MARGIN_TRUSTED_PROXIES = env_number("MARGIN_TRUSTED_PROXIES", 0)


def axes_client_ip(request):
    from django.conf import settings

    trusted = settings.MARGIN_TRUSTED_PROXIES
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    hops = [hop for hop in hops if hop]
    if trusted and len(hops) >= trusted:
        return hops[-trusted]
    return request.META.get("REMOTE_ADDR")


AXES_CLIENT_IP_CALLABLE = axes_client_ip

# --- Celery: Redis broker, JSON only, the job row is the record of truth -----------------------
def embedded_redis_password(var_dir):
    """The password of the redis-server `manage.py serve` starts, generated once into var/ (mode
    0600) and read by every process (web, workers), so another local process can neither inject
    nor flush jobs. Created with a hard link so processes starting together agree on one."""
    import secrets

    path = var_dir / "redis" / "password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"password.{os.getpid()}")
        descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another process won the race: use its password
        finally:
            draft.unlink()
    return path.read_text().strip()


# REDIS_URL (with its password, `redis://:PASSWORD@host:6379/0`) for a Redis of your own; without
# it, the embedded one on 127.0.0.1:6379 with the generated password.
REDIS_URL = os.environ.get("REDIS_URL") or (
    f"redis://:{embedded_redis_password(VAR_DIR)}@127.0.0.1:6379/0"
)
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None  # progress lives on Job rows, never in a result backend
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- Models ---------------------------------------------------------------------------------------
# Safetensors checkpoints + metadata, shared by the web process and every worker.
MARGIN_MODEL_STORE = Path(os.environ.get("MARGIN_MODEL_STORE", VAR_DIR / "models"))
# Two variants per pair for diversity (Llama 2, sec. 3.2.1: "two different model variants,
# and varying the temperature hyper-parameter").
MARGIN_PAIR_TEMPERATURES = [
    float(t) for t in env_list("MARGIN_PAIR_TEMPERATURES", "0.7,1.0")
]
MARGIN_MAX_NEW_TOKENS = env_number("MARGIN_MAX_NEW_TOKENS", 128)
# A running job's worker renews its lease every third of this (margin.jobs); a lease this old
# means the worker died, and the reconciler, every MARGIN_RECONCILE_SECONDS, re-queues the job.
MARGIN_JOB_LEASE_SECONDS = env_number("MARGIN_JOB_LEASE_SECONDS", 60)
MARGIN_RECONCILE_SECONDS = env_number("MARGIN_RECONCILE_SECONDS", 60, float)
# A queued job's message is sent again this long after the last send (a broker restarted empty).
MARGIN_JOB_RESEND_SECONDS = env_number("MARGIN_JOB_RESEND_SECONDS", 600)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

# --- Annotation -----------------------------------------------------------------------------------
# Leases one annotator may hold at once, over all projects (one per project in the normal flow).
MARGIN_MAX_OPEN_LEASES = env_number("MARGIN_MAX_OPEN_LEASES", 3)
MARGIN_MAX_TEXT_CHARS = env_number("MARGIN_MAX_TEXT_CHARS", 20000)
# Write-a-prompt pairs one annotator may have generating (queued or running) at once.
MARGIN_MAX_OPEN_GENERATIONS = env_number("MARGIN_MAX_OPEN_GENERATIONS", 2)
# Imports (dataio): a bigger file, line or record count is refused with a clear message.
MARGIN_IMPORT_MAX_BYTES = env_number("MARGIN_IMPORT_MAX_BYTES", 500 * 2**20)
MARGIN_IMPORT_MAX_LINE_BYTES = env_number("MARGIN_IMPORT_MAX_LINE_BYTES", 2**20)
MARGIN_IMPORT_MAX_RECORDS = env_number("MARGIN_IMPORT_MAX_RECORDS", 200000)
# The staff upload page imports inside the web request: larger files go through `import_data`.
MARGIN_UPLOAD_MAX_BYTES = env_number("MARGIN_UPLOAD_MAX_BYTES", 20 * 2**20)
# Real preference data (the repository's ../shared/data) used by the demo seed.
MARGIN_SHARED_DATA = Path(os.environ.get("MARGIN_SHARED_DATA", BASE_DIR.parent / "shared" / "data"))
# Fail fast when Redis is down instead of hanging a web request; the job row stays queued and
# the reconciler (margin.tasks) sends it again.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5}
