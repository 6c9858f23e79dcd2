"""Staff dashboard screens. Every view is wrapped in `staff_required(<permission>)` (margin/roles.py):
reading needs VIEW_DASHBOARD, each action its own permission. Views parse, call a service or
selector, and render a page or the partial htmx swaps."""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from annotation import services as annotation_services
from annotation.models import Batch, Comparison, Project
from dashboard import forms, models_data, selectors, services
from dashboard import workers as worker_health
from margin.jobs import job_cancel_request
from margin.models import Job
from margin.roles import MANAGE_PROJECTS, RUN_JOBS, VIEW_DASHBOARD, staff_required


def _upload_url():
    try:
        return reverse("dataio:import")
    except NoReverseMatch:
        return None


# --- overview and projects ------------------------------------------------------------------------


@staff_required(VIEW_DASHBOARD)
@require_GET
def index(request):
    context = {
        "projects": selectors.projects_overview(),
        "jobs": selectors.jobs_list()[:8],
        "upload_url": _upload_url(),
    }
    return render(request, "dashboard/index.html", context)


@staff_required(MANAGE_PROJECTS)
def project_create(request):
    form = forms.ProjectForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            project = annotation_services.project_create(actor=request.user, **form.cleaned_data)
        except ValidationError as invalid:
            for field, problems in invalid.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            return redirect("dashboard:project", project_id=project.pk)
    status = 422 if form.errors else 200
    return render(request, "dashboard/project_form.html", {"form": form}, status=status)


def _project_context(project, settings_form=None, batch=None):
    per_day = selectors.judgments_per_day(project=project, batch=batch)
    strengths = selectors.strength_distribution(project=project, batch=batch)
    return {
        "project": project,
        "batch": batch,
        "batches": selectors.batches_progress(project=project),
        "per_day": per_day,
        "per_day_chart": models_data.chart(
            "per-day", "Judgments per day", [str(row["day"]) for row in per_day],
            [{"label": "judgments", "data": [row["judgments"] for row in per_day]}],
            "day", "judgments", kind="bar", counts=True),
        "strengths": strengths,
        "strength_chart": models_data.chart(
            "strengths", "Strength distribution", [row["label"] for row in strengths],
            [{"label": "judgments", "data": [row["judgments"] for row in strengths]}],
            "strength", "judgments", kind="bar", counts=True),
        "safety_bins": selectors.safety_bins(project=project, batch=batch) if project.is_safety else None,
        "skips": selectors.skips(project=project, batch=batch),
        "agreement": selectors.agreement_for(project=project, batch=batch),
        "settings_form": settings_form or forms.ProjectSettingsForm(instance=project),
        "upload_url": _upload_url(),
    }


@staff_required(VIEW_DASHBOARD)
@require_GET
def project(request, project_id):
    project = get_object_or_404(Project, pk=project_id)
    batch = None
    if request.GET.get("batch", "").isdigit():  # allowlist: a batch number of this project
        batch = get_object_or_404(Batch, project=project, number=int(request.GET["batch"]))
    return render(request, "dashboard/project.html", _project_context(project, batch=batch))


@staff_required(MANAGE_PROJECTS)
@require_POST
def project_settings(request, project_id):
    project = get_object_or_404(Project, pk=project_id)
    # A fresh instance: a refused form must not leave half-applied values on `project`.
    form = forms.ProjectSettingsForm(request.POST, instance=Project.objects.get(pk=project.pk))
    saved = form.is_valid()
    if saved:
        annotation_services.project_update(
            project=project, actor=request.user,
            **{name: form.cleaned_data[name] for name in form.Meta.fields},
        )
        form = forms.ProjectSettingsForm(instance=project)
    status = 200 if saved else 422
    if request.htmx:
        context = {"project": project, "settings_form": form, "saved": saved}
        return render(request, "dashboard/project.html#settings", context, status=status)
    context = {**_project_context(project, settings_form=form), "saved": saved}
    return render(request, "dashboard/project.html", context, status=status)


@staff_required(MANAGE_PROJECTS)
@require_POST
def batch_open(request, project_id):
    project = get_object_or_404(Project, pk=project_id)
    annotation_services.batch_open(project=project, actor=request.user)
    return redirect("dashboard:project", project_id=project.pk)


@staff_required(MANAGE_PROJECTS)
@require_POST
def batch_close(request, batch_id):
    batch = get_object_or_404(Batch, pk=batch_id, is_open=True)
    annotation_services.batch_close(batch=batch, actor=request.user)
    return redirect("dashboard:project", project_id=batch.project_id)


# --- annotators -----------------------------------------------------------------------------------


def _annotators_context(project):
    return {"project": project, "rows": selectors.annotators_table(project=project),
            "projects": Project.objects.all()}


@staff_required(VIEW_DASHBOARD)
@require_GET
def annotators(request):
    project = None
    if request.GET.get("project", "").isdigit():
        project = Project.objects.filter(pk=request.GET["project"]).first()
    return render(request, "dashboard/annotators.html", _annotators_context(project))


@staff_required(MANAGE_PROJECTS)
@require_POST
def annotator_update(request, user_id):
    user = get_object_or_404(get_user_model(), pk=user_id)
    form = forms.AnnotatorForm(request.POST)
    if not form.is_valid():
        return render(request, "dashboard/annotators.html#annotator-error",
                      {"form": form}, status=422)
    annotation_services.annotator_profile_update(
        user=user, actor=request.user, reason=form.cleaned_data["reason"],
        **forms.AnnotatorForm.ACTIONS[form.cleaned_data["action"]],
    )
    return redirect(request.POST.get("next") if request.POST.get("next", "").startswith("/dashboard/")
                    else "dashboard:annotators")


# --- review ---------------------------------------------------------------------------------------


@staff_required(VIEW_DASHBOARD)
@require_GET
def review(request, project_id):
    project = get_object_or_404(Project, pk=project_id)
    rows = selectors.comparisons_for_review(project=project)
    return render(request, "dashboard/review.html", {"project": project, "rows": rows})


@staff_required(MANAGE_PROJECTS)
def adjudicate(request, comparison_id):
    try:
        comparison = selectors.comparison_for_review(comparison_id=comparison_id)
    except Comparison.DoesNotExist:
        raise Http404("No such comparison.") from None
    form = forms.AdjudicationForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            annotation_services.comparison_adjudicate(
                comparison=comparison, staff=request.user, **form.cleaned_data
            )
        except ValidationError as invalid:
            for field, problems in invalid.message_dict.items():
                form.add_error(field if field in form.fields else None, problems)
        else:
            answer = f"response {form.cleaned_data['choice'].upper()}, {form.cleaned_data['strength'].replace('_', ' ')}"
            messages.success(request, f"Adjudication saved: comparison {comparison.pk} goes to {answer}; "
                                      "reward-model data and exports now use it.")
            return redirect("dashboard:review", project_id=comparison.batch.project_id)
    status = 422 if form.errors else 200
    return render(request, "dashboard/adjudicate.html",
                  {"comparison": comparison, "form": form}, status=status)


# --- leaderboard and models -----------------------------------------------------------------------


@staff_required(VIEW_DASHBOARD)
@require_GET
def leaderboard(request):
    return render(request, "dashboard/leaderboard.html",
                  {"rows": selectors.policy_leaderboard(), "style": selectors.policy_leaderboard_style_controlled()})


@staff_required(VIEW_DASHBOARD)
@require_GET
def models(request):
    return render(request, "dashboard/models.html", models_data.models_context())


@staff_required(VIEW_DASHBOARD)
@require_GET
def guardrails(request):
    """Per policy version: safety violation rates per risk category (evaluate_safety), the
    helpfulness-safety trade-off across versions, and the reward-hacking alarms of their runs."""
    from rlhf.safety_eval import guardrails_by_version

    rows = guardrails_by_version()
    evaluated = [row for row in rows if row["safety"]]
    categories = sorted({name for row in evaluated for name in row["safety"]["per_category"]})
    per_category = models_data.chart(
        "safety-per-category", "Violation rate per risk category", categories,
        [{"label": row["version"].name, "data": [row["safety"]["per_category"].get(c, {}).get("rate")
                                                 for c in categories]} for row in evaluated],
        "risk category", "share", kind="bar")
    trade_off = models_data.chart(
        "safety-trade-off", "Helpfulness and safety across versions", [row["version"].name for row in evaluated],
        [{"label": "violation rate (safety RM)", "data": [row["safety"]["overall"]["rate"] for row in evaluated]},
         {"label": "helpfulness (win rate)", "data": [row["helpfulness"] for row in evaluated]}],
        "policy version (oldest first)", "share")
    return render(request, "dashboard/guardrails.html", {"rows": rows, "evaluated": evaluated,
                                                         "per_category_chart": per_category, "trade_off_chart": trade_off})


@staff_required(RUN_JOBS)
def policy_backend(request, version_id):
    """A policy version's generation backend: the local engine or an OpenAI-compatible server."""
    from django.contrib import messages

    from rlhf.forms import PolicyBackendForm
    from rlhf.models import PolicyVersion
    from rlhf.policies import policy_backend_update

    version = get_object_or_404(PolicyVersion, pk=version_id)
    form = PolicyBackendForm(request.POST if request.method == "POST" else None, instance=version)
    if request.method == "POST" and form.is_valid():
        version = policy_backend_update(version=PolicyVersion.objects.get(pk=version_id), **form.cleaned_data)
        messages.success(request, f"{version.name} now generates with: {version.get_backend_display()}.")
        return redirect("dashboard:policy_backend", version_id=version.pk)
    status = 422 if form.errors else 200
    return render(request, "dashboard/policy_backend.html", {"form": form, "version": version}, status=status)


# --- jobs -----------------------------------------------------------------------------------------


@staff_required(VIEW_DASHBOARD)
@require_GET
def jobs(request):
    state, kind = request.GET.get("state", ""), request.GET.get("kind", "")
    jobs = selectors.jobs_list(state=state, kind=kind)
    live = any(not job.is_finished for job in jobs)
    poll_url = request.get_full_path() if live else None
    if request.htmx:
        return render(request, "dashboard/_job_rows.html", {"jobs": jobs, "poll_url": poll_url},
                      status=200 if live else 286)
    context = {
        "jobs": jobs,
        "poll_url": poll_url,
        "state": state, "kind": kind,
        "states": Job.State.choices, "kinds": Job.Kind.choices,
        "launchers": services.LAUNCHERS,
    }
    return render(request, "dashboard/jobs.html", context)


@staff_required(VIEW_DASHBOARD)
@require_GET
def workers(request):
    """The live workers per queue (dashboard/workers.py); the jobs pages load it after the page,
    since asking the workers waits about a second for their answers."""
    return render(request, "dashboard/_workers.html", {"health": worker_health.workers_by_queue()})


def _job_context(job, **extra):
    return {"job": job, "params": selectors.job_params_rows(job.params),
            "queue": worker_health.queue_for_kind(job.kind), **extra}


@staff_required(VIEW_DASHBOARD)
@require_GET
def job(request, job_id):
    job = get_object_or_404(Job, pk=job_id)
    if request.htmx:
        # Polled every 2 s; 286 tells htmx to stop polling once the job has finished.
        status = 286 if job.is_finished else 200
        return render(request, "dashboard/job.html#job-progress", {"job": job}, status=status)
    return render(request, "dashboard/job.html", _job_context(job))


@staff_required(RUN_JOBS)
@require_POST
def job_cancel(request, job_id):
    job = get_object_or_404(Job, pk=job_id)
    if not job.is_finished:
        job_cancel_request(job=job)
    return redirect("dashboard:job", job_id=job.pk)


@staff_required(RUN_JOBS)
@require_POST
def job_retry(request, job_id):
    job = get_object_or_404(Job, pk=job_id)
    try:
        with transaction.atomic():
            new = services.job_retry(job=job, created_by=request.user)
    except ValidationError as refused:
        return render(request, "dashboard/job.html", _job_context(job, error=refused.messages[0]),
                      status=422)
    return redirect("dashboard:job", job_id=new.pk)


# Config fields that name a checkpoint directory (a registered name or a path). A path typed on
# this page must lie in settings.MARGIN_MODEL_STORE, so staff cannot point a job (or probe the
# server's file system through its error messages) anywhere else. Management commands are run by
# the operator on the server itself and may name any path.
MODEL_PATH_FIELDS = ("base_model", "helpfulness_rm", "safety_rm")


def _model_paths_confine(config):
    store = os.path.abspath(settings.MARGIN_MODEL_STORE)
    for name in MODEL_PATH_FIELDS:
        value = str(config.get(name) or "")
        # Anything the loaders would open as a directory (scoring.resolve_checkpoint tries the
        # path before the registered name); symlinks the operator put in the store are followed.
        if value and ("/" in value or os.sep in value or value.startswith(".") or os.path.exists(value)):
            if os.path.commonpath([os.path.abspath(value), store]) != store:
                raise ValidationError(
                    {name: f"{value!r} is outside the model store: give a registered name or a "
                           f"checkpoint under {store}."}
                )


def _launch_form_class(kind):
    launcher = services.LAUNCHERS.get(kind)
    if launcher is None:
        raise Http404("No launch form for this kind of job.")
    lead = {}
    if kind == Job.Kind.TRAIN_REWARD_MODEL:
        lead = {
            "project": forms.forms.ModelChoiceField(
                queryset=Project.objects.all(),
                error_messages={"required": "Pick the project whose judgments train it."},
            ),
            "name": forms.forms.CharField(
                max_length=100, error_messages={"required": "Name the reward model."}
            ),
        }
    return launcher, forms.config_form_class(launcher.config_class(), lead=lead)


@staff_required(RUN_JOBS)
def job_launch(request, kind):
    launcher, form_class = _launch_form_class(kind)
    form = form_class(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        lead = {name: form.cleaned_data[name] for name in ("project", "name") if name in form.fields}
        try:
            _model_paths_confine(form.config())
            with transaction.atomic():
                job = services.job_launch(kind=kind, lead=lead, config=form.config(),
                                          created_by=request.user)
        except ValidationError as invalid:
            form.add_service_errors(invalid)
        else:
            return redirect("dashboard:job", job_id=job.pk)
    status = 422 if form.errors else 200
    return render(request, "dashboard/job_launch.html",
                  {"form": form, "launcher": launcher, "kind": kind}, status=status)


# --- reward-model guardrails (issue 21) -----------------------------------------------------------


@staff_required(VIEW_DASHBOARD)
def reward_model(request, reward_model_id):
    """One reward model: length baselines, and for a safety RM the precision / recall curve with
    the gate on it; staff who run jobs set the gate here (POST gate=<score>, or reset=1)."""
    from django.core.exceptions import PermissionDenied

    from rewardmodel.models import RewardModel

    reward_model = get_object_or_404(RewardModel, pk=reward_model_id)
    form = forms.SafetyGateForm(request.POST if request.method == "POST" else None)
    if form.is_bound:
        if not request.user.has_perm(RUN_JOBS):
            raise PermissionDenied
        if form.is_valid():
            try:
                services.reward_model_gate_set(reward_model=reward_model, gate=form.cleaned_data["gate"], actor=request.user)
                return redirect("dashboard:reward_model", reward_model_id=reward_model_id)
            except ValidationError as refused:
                form.add_error(None, refused)
    error = "; ".join(f"{field}: {' '.join(texts)}" for field, texts in form.errors.items())
    status = 422 if error else 200
    context = {**selectors.reward_model_guardrails(reward_model_id=reward_model_id), "error": error}
    return render(request, "dashboard/reward_model.html", context, status=status)
