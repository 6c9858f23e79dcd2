from django.urls import path

from dataio import views

app_name = "dataio"

urlpatterns = [
    path("import/", views.import_page, name="import"),
    path("import/<int:job_id>/", views.import_job_page, name="import_job"),
    path("export/", views.export_page, name="export"),
]
