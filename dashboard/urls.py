from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.index, name="index"),
    path("projects/new/", views.project_create, name="project_create"),
    path("projects/<int:project_id>/", views.project, name="project"),
    path("projects/<int:project_id>/settings/", views.project_settings, name="project_settings"),
    path("projects/<int:project_id>/batches/open/", views.batch_open, name="batch_open"),
    path("batches/<int:batch_id>/close/", views.batch_close, name="batch_close"),
    path("projects/<int:project_id>/review/", views.review, name="review"),
    path("comparisons/<int:comparison_id>/adjudicate/", views.adjudicate, name="adjudicate"),
    path("annotators/", views.annotators, name="annotators"),
    path("annotators/<int:user_id>/", views.annotator_update, name="annotator_update"),
    path("leaderboard/", views.leaderboard, name="leaderboard"),
    path("models/", views.models, name="models"),
    path("guardrails/", views.guardrails, name="guardrails"),
    path("policies/<int:version_id>/backend/", views.policy_backend, name="policy_backend"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/workers/", views.workers, name="workers"),
    path("jobs/new/<str:kind>/", views.job_launch, name="job_launch"),
    path("jobs/<int:job_id>/", views.job, name="job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:job_id>/retry/", views.job_retry, name="job_retry"),
    path("models/reward/<int:reward_model_id>/", views.reward_model, name="reward_model"),
]
