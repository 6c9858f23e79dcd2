"""Who on the staff may do what: the one staff check every staff page uses, and the roles
(Django groups of the permissions in dashboard/models.py) that open each action.

A staff page needs `is_staff` and one permission; superusers hold every permission. Give a user a
role with `manage.py staff_role USER ROLE` or in the admin (Users -> Groups).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db import transaction

from dashboard.models import StaffAction

APP = StaffAction._meta.app_label
VIEW_DASHBOARD = f"{APP}.view_dashboard"
MANAGE_PROJECTS = f"{APP}.manage_projects"  # projects, batches, annotators, adjudications
IMPORT_DATA = f"{APP}.import_data"
EXPORT_DATA = f"{APP}.export_data"
RUN_JOBS = f"{APP}.run_jobs"  # launch, cancel, retry
PERMISSION_NAMES = {f"{APP}.{codename}": name for codename, name in StaffAction._meta.permissions}


@dataclass(frozen=True)
class Role:
    group: str  # the Django group's name, as the admin shows it
    permissions: tuple[str, ...]


ROLES = {
    "viewer": Role("Viewer", (VIEW_DASHBOARD,)),
    "project_manager": Role("Project manager", (VIEW_DASHBOARD, MANAGE_PROJECTS, IMPORT_DATA, EXPORT_DATA)),
    "ml_operator": Role("ML operator", (VIEW_DASHBOARD, RUN_JOBS, EXPORT_DATA)),
}


def staff_required(permission):
    """Anonymous users go to the login page; signed-in users who are not staff, or lack
    `permission`, get a 403 that names what is missing."""

    def decorate(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            staff_ensure(user=request.user, permission=permission)
            return view(request, *args, **kwargs)

        return guarded

    return decorate


def staff_ensure(*, user, permission=None):
    """Raise PermissionDenied, naming what is missing, unless `user` is staff (and holds
    `permission`, when one is given). The admin site calls it without a permission."""
    if not user.is_staff:
        raise PermissionDenied("This page is for staff.")
    if permission and not user.has_perm(permission):
        holders = [key.replace("_", " ") for key, role in ROLES.items() if permission in role.permissions]
        raise PermissionDenied(
            f"You need the permission “{PERMISSION_NAMES[permission]}” ({permission}). "
            f"Roles that have it: {', '.join(holders)}. An admin can give you one."
        )


def roles_sync():
    """Create the role groups (and their permissions, if post_migrate has not yet) with exactly
    the permissions ROLES lists; returns {role: Group}. Idempotent."""
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.models import ContentType

    content_type = ContentType.objects.get_for_model(StaffAction)
    permissions = {
        f"{APP}.{codename}": Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name})[0]
        for codename, name in StaffAction._meta.permissions
    }
    groups = {}
    for key, role in ROLES.items():
        groups[key], _ = Group.objects.get_or_create(name=role.group)
        groups[key].permissions.set([permissions[name] for name in role.permissions])
    return groups


@transaction.atomic
def staff_roles_set(*, user, roles):
    """Give `user` exactly `roles` (keys of ROLES; empty takes every role away). A user with a
    role is staff; the staff flag itself is left alone when roles are taken away."""
    unknown = sorted(set(roles) - set(ROLES))
    if unknown:
        raise ValueError(f"Unknown role {', '.join(unknown)}: the roles are {', '.join(ROLES)}.")
    groups = roles_sync()
    user.groups.remove(*groups.values())
    user.groups.add(*(groups[key] for key in roles))
    if roles and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def staff_roles_of(*, user):
    names = set(user.groups.values_list("name", flat=True))
    return [key for key, role in ROLES.items() if role.group in names]
