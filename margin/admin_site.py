from functools import wraps

from django.contrib import admin

from margin.roles import staff_ensure


class StaffOnlyAdminSite(admin.AdminSite):
    """A signed-in annotator gets a plain 403, not a redirect to the admin's login form."""

    site_header = "Margin administration"
    site_title = "Margin admin"

    def _refuse_non_staff(self, view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if request.user.is_authenticated:
                staff_ensure(user=request.user)
            return view(request, *args, **kwargs)

        return guarded

    def admin_view(self, view, cacheable=False):
        return self._refuse_non_staff(super().admin_view(view, cacheable))

    def login(self, request, extra_context=None):
        return self._refuse_non_staff(super().login)(request, extra_context)
