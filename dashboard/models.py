"""The dashboard keeps no data of its own; this model only carries the permissions of the staff
pages (dashboard and data import/export). margin/roles.py groups them into roles."""

from django.db import models


class StaffAction(models.Model):
    """No table: Django creates permissions for a model, and staff pages check these."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_dashboard", "Can view the staff dashboard"),
            ("manage_projects", "Can manage projects, batches and annotators"),
            ("import_data", "Can import data"),
            ("export_data", "Can export data"),
            ("run_jobs", "Can launch, cancel and retry ML jobs"),
        ]
