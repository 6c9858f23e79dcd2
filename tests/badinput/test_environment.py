"""Settings from the environment: a bad number stops start-up naming the variable."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = (
    "import json, django; from django.conf import settings as s; django.setup();"
    "db = s.DATABASES['default'];"
    "print(json.dumps({'age': db['CONN_MAX_AGE'], 'checks': db['CONN_HEALTH_CHECKS'],"
    " 'leases': s.MARGIN_MAX_OPEN_LEASES, 'reconcile': s.MARGIN_RECONCILE_SECONDS}))"
)


def load_settings(tmp_path, **env):
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "margin.settings",
                                 "MARGIN_VAR_DIR": str(tmp_path), **env})
    if result.returncode:
        return result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_numbers_are_read_from_the_environment(tmp_path):
    values = load_settings(tmp_path, MARGIN_DB_CONN_MAX_AGE="60", MARGIN_MAX_OPEN_LEASES="5",
                           MARGIN_RECONCILE_SECONDS="2.5")
    assert values == {"age": 60, "checks": True, "leases": 5, "reconcile": 2.5}


@pytest.mark.parametrize("name, value, message", [
    ("MARGIN_DB_CONN_MAX_AGE", "a minute", "MARGIN_DB_CONN_MAX_AGE must be a whole number, got 'a minute'"),
    ("MARGIN_MAX_OPEN_LEASES", "2.5", "MARGIN_MAX_OPEN_LEASES must be a whole number, got '2.5'"),
    ("MARGIN_RECONCILE_SECONDS", "soon", "MARGIN_RECONCILE_SECONDS must be a number, got 'soon'"),
    ("MARGIN_IMPORT_MAX_BYTES", "-1", "MARGIN_IMPORT_MAX_BYTES must not be negative, got '-1'"),
])
def test_a_bad_number_stops_start_up_naming_the_variable(tmp_path, name, value, message):
    stderr = load_settings(tmp_path, **{name: value})
    assert f"ImproperlyConfigured: {message}" in stderr
