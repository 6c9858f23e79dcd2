from django.urls import path

from annotation import views

app_name = "annotation"

urlpatterns = [
    path("", views.home, name="home"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("projects/<int:project_id>/compare/", views.compare, name="compare"),
    path("projects/<int:project_id>/undo/", views.undo, name="undo"),
    path("projects/<int:project_id>/write/", views.write, name="write"),
    path("projects/<int:project_id>/demonstrate/", views.demonstrate, name="demonstrate"),
    path("comparisons/<int:comparison_id>/judge/", views.judge, name="judge"),
    path("comparisons/<int:comparison_id>/skip/", views.skip, name="skip"),
    path("comparisons/<int:comparison_id>/continue/", views.continue_dialogue, name="continue"),
    path("jobs/<int:job_id>/pair/", views.pair_status, name="pair_status"),
    path("jobs/<int:job_id>/pair/cancel/", views.pair_cancel, name="pair_cancel"),
    path("my/judgments/", views.my_judgments, name="my_judgments"),
    path("my/judgments/<int:judgment_id>/", views.my_judgment, name="my_judgment"),
]
