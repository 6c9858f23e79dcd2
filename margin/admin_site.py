from django.contrib import admin
from django.core.exceptions import PermissionDenied


class StaffOnlyAdminSite(admin.AdminSite):
    """A signed-in annotator gets a plain 403 instead of the admin's login form."""

    site_header = "Margin administration"
    site_title = "Margin admin"

    def login(self, request, extra_context=None):
        if request.user.is_authenticated and not request.user.is_staff:
            raise PermissionDenied("The admin is for staff only.")
        return super().login(request, extra_context)
