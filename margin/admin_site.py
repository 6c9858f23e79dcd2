from functools import wraps

from django.contrib import admin
from django.core.exceptions import PermissionDenied


class StaffOnlyAdminSite(admin.AdminSite):
    """A signed-in annotator gets a plain 403, not a redirect to the admin's login form."""

    site_header = "Margin administration"
    site_title = "Margin admin"

    def _refuse_non_staff(self, view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if request.user.is_authenticated and not request.user.is_staff:
                raise PermissionDenied("The admin is for staff only.")
            return view(request, *args, **kwargs)

        return guarded

    def admin_view(self, view, cacheable=False):
        return self._refuse_non_staff(super().admin_view(view, cacheable))

    def login(self, request, extra_context=None):
        return self._refuse_non_staff(super().login)(request, extra_context)
