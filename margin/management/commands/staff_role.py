"""Give a user staff roles: `manage.py staff_role alice project_manager ml_operator`."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from margin.roles import ROLES, staff_roles_of, staff_roles_set

NONE = "none"


class Command(BaseCommand):
    help = ("Set a user's staff roles (exactly those named; 'none' takes every role away) or, "
            "with no role, show them. Roles: " + ", ".join(ROLES) + ".")

    def add_arguments(self, parser):
        parser.add_argument("username")
        # No argparse `choices`: with nargs="*" it refuses an empty list on Python 3.11.
        parser.add_argument("roles", nargs="*", metavar="ROLE",
                            help=f"one or more of {', '.join(ROLES)}, or {NONE}")

    def handle(self, *args, username, roles, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}: create it first (manage.py createsuperuser, "
                               "or the admin's Users page).")
        unknown = [role for role in roles if role not in (*ROLES, NONE)]
        if unknown:
            raise CommandError(f"Unknown role {unknown[0]!r}: the roles are {', '.join(ROLES)} (or {NONE}).")
        if NONE in roles and len(roles) > 1:
            raise CommandError(f"'{NONE}' takes every role away: name it alone.")
        if roles:
            staff_roles_set(user=user, roles=[role for role in roles if role != NONE])
        held = staff_roles_of(user=user)
        superuser = " (superuser: every permission)" if user.is_superuser else ""
        self.stdout.write(f"{user.username}: {', '.join(held) or 'no role'}{superuser}")
