"""Secrets only from the environment: production settings read the secret key, database and Redis
credentials from it, refuse to start on the development key, and no settings file holds a
password, token or credentialed URL of its own."""

import ast
import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

SECRET_NAME = re.compile(r"(SECRET|SECRET_KEY|PASSWORD|PASSWD|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)$", re.I)
CREDENTIALED_URL = re.compile(r"\w+://[^/\s:@]*:[^/\s@]+@")
STRONG_KEY = "k" * 40 + "-from-the-environment-" + "z" * 20


def production_settings(tmp_path, **env):
    """The production settings module's values, loaded in a fresh interpreter with `env`."""
    script = (
        "import json, django; from django.conf import settings as s; django.setup();"
        "db = s.DATABASES['default'];"
        "print(json.dumps({'SECRET_KEY': s.SECRET_KEY, 'DB_PASSWORD': db.get('PASSWORD', ''),"
        " 'DB_ENGINE': db['ENGINE'], 'BROKER': s.CELERY_BROKER_URL, 'DEBUG': s.DEBUG}))"
    )
    clean = {k: v for k, v in os.environ.items()
             if k not in ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_ALLOW_ASYNC_UNSAFE")}
    clean.update(DJANGO_SETTINGS_MODULE="margin.settings_production", MARGIN_VAR_DIR=str(tmp_path), **env)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=clean,
                            capture_output=True, text=True)
    if result.returncode:
        return result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_production_reads_the_secret_key_and_credentials_from_the_environment(tmp_path):
    values = production_settings(
        tmp_path, SECRET_KEY=STRONG_KEY,
        DATABASE_URL="postgres://margin:db-pass-from-env@db.internal:5432/margin",
        REDIS_URL="redis://:redis-pass-from-env@redis.internal:6379/0",
    )
    assert values["SECRET_KEY"] == STRONG_KEY
    assert values["DB_PASSWORD"] == "db-pass-from-env"
    assert values["DB_ENGINE"] == "django.db.backends.postgresql"
    assert values["BROKER"] == "redis://:redis-pass-from-env@redis.internal:6379/0"
    assert values["DEBUG"] is False


def test_without_credentials_in_the_environment_none_are_made_up(tmp_path):
    """No database password; the embedded Redis's password is the one generated into var/ at
    first start (margin.settings.embedded_redis_password), not a literal of the settings."""
    values = production_settings(tmp_path, SECRET_KEY=STRONG_KEY)
    assert values["DB_PASSWORD"] == ""
    generated = (tmp_path / "redis" / "password").read_text().strip()
    assert len(generated) >= 32
    assert values["BROKER"] == f"redis://:{generated}@127.0.0.1:6379/0"


@pytest.mark.parametrize("key", ["dev-only-insecure-key-do-not-use-in-production", ""])
def test_production_refuses_the_development_or_an_empty_key(tmp_path, key):
    error = production_settings(tmp_path, SECRET_KEY=key)
    assert isinstance(error, str) and "ImproperlyConfigured" in error and "SECRET_KEY" in error


@pytest.mark.parametrize("key, why", [
    ("x" * 49, "49 characters"),
    ("ab" * 30, "two distinct characters"),
    ("django-insecure-" + "q7" * 30, "Django's placeholder prefix"),
])
def test_production_refuses_a_weak_key_at_start_up(tmp_path, key, why):
    """Not only `check --deploy` (security.W009): the settings module itself stops start-up."""
    error = production_settings(tmp_path, SECRET_KEY=key)
    assert isinstance(error, str), f"started with a key of {why}"
    assert "ImproperlyConfigured" in error and "SECRET_KEY is too weak" in error
    assert key not in error  # the message does not print the secret


def _literals(node):
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_settings_file_holds_a_secret_of_its_own():
    """A new setting named like a secret must come from the environment with no literal default
    (DEVELOPMENT_SECRET_KEY is the one exception, and production refuses it)."""
    found = []
    for path in sorted((REPO / "margin").glob("settings*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
                for name in names:
                    if not SECRET_NAME.search(name) or (path.name, name) == ("settings.py", "DEVELOPMENT_SECRET_KEY"):
                        continue
                    environment_names = {n.value for n in ast.walk(node) if isinstance(n, ast.Subscript)
                                         for n in [n.slice] if isinstance(n, ast.Constant)}
                    literals = set(_literals(node.value)) - environment_names - {name, ""}
                    if literals:
                        found.append(f"{path.name}: {name} has literal(s) {sorted(literals)}")
        found += [f"{path.name}: credentialed URL {text!r}" for text in _literals(tree)
                  if CREDENTIALED_URL.search(text)]
    assert not found, found
