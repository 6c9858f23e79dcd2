from django.apps import AppConfig


class DataioConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "dataio"
    verbose_name = "Data import and export"
