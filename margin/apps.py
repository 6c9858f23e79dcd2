from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MarginConfig(AppConfig):
    default = True
    """Cross-cutting pieces: background jobs and the embedded `serve` command."""

    name = "margin"
    verbose_name = "Jobs"


class MarginAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "margin.admin_site.StaffOnlyAdminSite"
