"""`manage.py staff_role` with bad arguments: a CommandError naming the problem, no role changed."""

import pytest
from django.core.management import CommandError, call_command

from margin.roles import staff_roles_of
from tests.factories import StaffFactory

pytestmark = pytest.mark.django_db

CASES = {
    "unknown role": (["olga", "admin"], "Unknown role 'admin': the roles are viewer, project_manager, ml_operator"),
    "role with a script": (["olga", "viewer", "<script>"], "Unknown role '<script>'"),
    "unknown user": (["nobody", "viewer"], "No user named 'nobody'"),
    "no username": ([], "the following arguments are required: username"),
    "none with a role": (["olga", "none", "viewer"], "'none' takes every role away: name it alone."),
    "NUL in the username": (["ol\x00ga", "viewer"], "No user named 'ol\\x00ga'"),
}


@pytest.mark.parametrize("args,message", CASES.values(), ids=CASES.keys())
def test_staff_role_refuses_bad_arguments(args, message):
    olga = StaffFactory(username="olga", roles=["ml_operator"])
    with pytest.raises(CommandError) as refused:
        call_command("staff_role", *args)
    assert message in str(refused.value)
    assert staff_roles_of(user=olga) == ["ml_operator"]
