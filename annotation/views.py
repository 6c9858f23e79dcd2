"""Annotator screens. Views parse, call a service or selector, and render a page or partial."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors, services
from annotation.forms import SKIP_REASONS, DemonstrationForm, JudgmentForm, PromptForm, SkipForm
from annotation.models import Assignment, Comparison, Project
from margin.models import Job

TASK = "annotation/_task.html"
MAX_ID = 2**63 - 1  # the largest primary key a database row can have
# A plain POST (no JavaScript, or Enter pressed before htmx took over a form just swapped in) is
# answered with a redirect; the "Saved" / "Skipped" banner waits in the session for that page.
BANNER = "annotation_banner"


def _task_context(user, project, *, assignment=None, form=None, error=None, serve=True, **extra):
    """Context for the #task fragment: the annotator's current comparison, or why there is none,
    with their progress; `extra` adds the banners (saved, undone, undo_error...). `serve=False`
    shows only what is already theirs (a refused request changes nothing)."""
    if assignment is None and error is None and serve:
        try:
            assignment = services.assignment_next(annotator=user, project=project)
        except services.AnnotationError as refusal:
            error = str(refusal)
    context = {"project": project, "error": error, "skip_reasons": SKIP_REASONS, **extra}
    if assignment is not None:
        context.update(selectors.comparison_context_for(assignment=assignment))
        context["form"] = form or JudgmentForm(project=project)
    if error is None:
        context["progress"] = selectors.progress_for(
            annotator=user, project=project, showing=assignment is not None
        )
    return context


def _render_task(request, context, status=200, page="annotation/compare.html"):
    template = TASK if request.htmx else page
    return render(request, template, context, status=status)


def _render_refusal(request, project, refusal, status=422):
    """The annotator may do no work here now (paused, qualification): say why, show no work."""
    return _render_task(request, _task_context(request.user, project, error=str(refusal)), status)


def _access_refusal(user, project):
    """Why this annotator may do no work in `project` now, or None (for pages shown on GET)."""
    try:
        services.annotator_access_check(annotator=user, project=project)
    except services.AnnotationAccessError as refusal:
        return str(refusal)
    return None


def _assignment_or_404(user, comparison_id):
    if comparison_id > MAX_ID:  # names no row, and SQLite cannot even compare it (OverflowError)
        raise Http404("No such comparison.")
    return selectors.assignment_get_for_annotator(annotator=user, comparison_id=comparison_id)


def _active_project(project_id):
    return get_object_or_404(Project, pk=project_id, is_active=True)


@require_GET
def favicon(request):
    """Browsers ask for /favicon.ico on pages without our <link rel="icon"> (the admin's)."""
    return redirect(static("margin/favicon.svg"), permanent=True)


@login_required
@require_GET
def home(request):
    rows = selectors.projects_for_annotator(annotator=request.user)
    return render(request, "annotation/home.html", {"rows": rows})


@login_required
@require_GET
def compare(request, project_id):
    project = _active_project(project_id)
    banner = request.session.pop(BANNER, None) or {}
    if banner.pop("project", None) != project.pk:
        banner = {}
    if "continue_from" in banner:
        banner["continue_from"] = Comparison.objects.filter(
            pk=banner["continue_from"], reserved_for=request.user
        ).first()
    return _render_task(request, _task_context(request.user, project, **banner))


def _redirect_to_compare(request, project, **banner):
    request.session[BANNER] = {"project": project.pk, **banner}
    return redirect("annotation:compare", project_id=project.pk)


@login_required
@require_POST
def judge(request, comparison_id):
    assignment = _assignment_or_404(request.user, comparison_id)
    project = assignment.comparison.batch.project
    form = JudgmentForm(request.POST, project=project)
    judgment = None
    if form.is_valid():
        try:
            judgment = services.judgment_submit(
                annotator=request.user,
                comparison_id=comparison_id,
                chosen_side=form.cleaned_data["choice"],
                strength=form.cleaned_data["strength"],
                left_safe=form.cleaned_data["left_safe"],
                right_safe=form.cleaned_data["right_safe"],
                rationale=form.cleaned_data["rationale"],
            )
        except services.AnnotationAccessError as refusal:
            return _render_refusal(request, project, refusal)
        except ValidationError as invalid:
            for field, messages in invalid.message_dict.items():
                for message in messages:
                    form.add_error(field if field in form.fields else None, message)
        except services.AnnotationError as refusal:
            form.add_error(None, str(refusal))
    if form.errors:
        # 422 with the bound form: everything typed comes back to the annotator.
        context = _task_context(request.user, project, assignment=assignment, form=form)
        return _render_task(request, context, status=422)
    own_pair = assignment.comparison.reserved_for_id == request.user.pk
    if own_pair and form.cleaned_data["then_continue"]:
        return _render_continue(request, assignment.comparison)
    saved = {"choice": form.cleaned_data["choice"], "strength": judgment.get_strength_display()}
    context = _task_context(request.user, project, saved=saved)
    if own_pair:  # judged from the queue: continuing stays one link away
        context["continue_from"] = assignment.comparison
    if getattr(judgment, "attention_failed", False):
        # An attention check was missed: say so (warn policy) or show the pause (block policy).
        context["attention_warning"] = (
            "That was an attention check with a clear answer, and your choice missed it. "
            "Please read both responses fully before judging."
        )
        return _render_task(request, context)
    if not request.htmx:
        own = {"continue_from": assignment.comparison.pk} if own_pair else {}
        return _redirect_to_compare(request, project, saved=saved, **own)
    return _render_task(request, context)


@login_required
@require_POST
def skip(request, comparison_id):
    assignment = _assignment_or_404(request.user, comparison_id)
    project = assignment.comparison.batch.project
    form = SkipForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.assignment_skip(
                annotator=request.user,
                comparison_id=comparison_id,
                reason=form.cleaned_data["reason"],
            )
        except services.AnnotationAccessError as refusal:
            return _render_refusal(request, project, refusal)
        except services.AnnotationError as refusal:
            error = str(refusal)
    else:
        error = form.errors["reason"][0]
    if error:
        context = _task_context(request.user, project, assignment=assignment)
        context["skip_error"] = error
        return _render_task(request, context, status=422)
    if not request.htmx:
        return _redirect_to_compare(request, project, skipped=True)
    return _render_task(request, _task_context(request.user, project, skipped=True))


@login_required
@require_POST
def undo(request, project_id):
    project = _active_project(project_id)
    try:
        assignment = services.judgment_undo_last(annotator=request.user, project=project)
    except services.AnnotationAccessError as refusal:
        return _render_refusal(request, project, refusal)
    except services.AnnotationError as refusal:
        # Say why, and keep the comparison they hold on screen: undo never leaves a dead end.
        held = selectors.assignment_open_for(annotator=request.user, project=project)
        context = _task_context(
            request.user, project, assignment=held, serve=False, undo_error=str(refusal)
        )
        return _render_task(request, context, 422)
    if not request.htmx:
        return redirect("annotation:compare", project_id=project.pk)
    shown = selectors.judgment_shown(judgment=assignment.undone_judgment)
    form = JudgmentForm(project=project, initial=shown)
    undone = {**shown, "strength": assignment.undone_judgment.get_strength_display()}
    context = _task_context(request.user, project, assignment=assignment, form=form, undone=undone)
    return _render_task(request, context)


# --- write a prompt, generate a pair, compare, continue the dialogue ------------------------------


def _render_generating(request, job, status=200):
    template = "annotation/_task_generating.html" if request.htmx else "annotation/write.html"
    context = {
        "job": job,
        "project": job_project(job),
        "pending_prompt": selectors.pair_job_prompt(job=job),
        "elapsed_seconds": int((timezone.now() - job.created_at).total_seconds()),
    }
    return render(request, template, context, status=status)


def job_project(job):
    return Project.objects.filter(dialogues__pk=job.params.get("dialogue_id")).first()


def _render_continue(request, comparison, form=None, status=200):
    context = {
        "project": comparison.batch.project,
        "judged": comparison,
        "continue_form": form or PromptForm(),
    }
    template = "annotation/_task_continue.html" if request.htmx else "annotation/write.html"
    return render(request, template, context, status=status)


def _render_write_form(request, project, form, *, refusal=None, status=200, notice=None):
    template = "annotation/_write_form.html" if request.htmx else "annotation/write.html"
    context = {"project": project, "form": form, "refusal": refusal, "notice": notice}
    return render(request, template, context, status=status)


@login_required
def write(request, project_id):
    project = _active_project(project_id)
    form = PromptForm(request.POST if request.method == "POST" else None)
    refusal = _access_refusal(request.user, project)
    if request.method == "GET" and refusal is None:
        # A reload while a pair generates finds it again, with its prompt and status.
        job = selectors.pair_job_pending_for(annotator=request.user, project=project)
        if job is not None:
            return _render_generating(request, job)
    if refusal is None and request.method == "POST" and form.is_valid():
        try:
            job = services.dialogue_start(
                annotator=request.user,
                project=project,
                prompt=form.cleaned_data["prompt"],
                is_adversarial=form.cleaned_data["is_adversarial"],
            )
        except (services.AnnotationError, ValidationError) as error:
            form.add_error(None, getattr(error, "messages", [str(error)])[0])
        else:
            return _render_generating(request, job)
    status = 422 if form.errors or (refusal and request.method == "POST") else 200
    return _render_write_form(request, project, form, refusal=refusal, status=status)


@login_required
def continue_dialogue(request, comparison_id):
    comparison = get_object_or_404(
        Comparison, pk=comparison_id, judgments__annotator=request.user
    )
    if request.method != "POST":  # the link from the queue's "Saved" banner
        return _render_continue(request, comparison)
    form = PromptForm(request.POST)
    if form.is_valid():
        try:
            job = services.dialogue_continue(
                annotator=request.user,
                comparison_id=comparison.pk,
                prompt=form.cleaned_data["prompt"],
            )
        except services.AnnotationAccessError as refusal:
            return _render_refusal(request, comparison.batch.project, refusal)
        except (services.AnnotationError, ValidationError) as refusal:
            form.add_error(None, getattr(refusal, "messages", [str(refusal)])[0])
        else:
            return _render_generating(request, job)
    return _render_continue(request, comparison, form=form, status=422)


def _generation_job(user, job_id):
    if job_id > MAX_ID:
        raise Http404("No such job.")
    return get_object_or_404(Job, pk=job_id, kind=Job.Kind.GENERATE_PAIR, created_by=user)


@login_required
@require_GET
def pair_status(request, job_id):
    """Polled while the worker generates; swaps in the comparison and stops polling (286)."""
    return _pair_status_response(request, _generation_job(request.user, job_id))


def _pair_status_response(request, job):
    if not job.is_finished:
        return _render_generating(request, job)
    project = job_project(job)
    if job.state != Job.State.SUCCEEDED:
        # The typed prompt comes back in the form, so nothing the annotator wrote is lost.
        form = PromptForm(initial={"prompt": selectors.pair_job_prompt(job=job)})
        notice = (
            "You cancelled the generation; your prompt is below to send again."
            if job.state == Job.State.CANCELLED
            else "Generating the responses failed; your prompt is below to try again, "
            "or tell staff if it keeps failing."
        )
        if job.error.startswith("GenerationUnavailable"):  # rlhf/backends.py: the model server is away
            notice = "Generation is unavailable, your prompt is kept: send it again later, or tell staff."
        return _render_write_form(request, project, form, status=286, notice=notice)
    comparison = Comparison.objects.get(pk=job.result["comparison_id"])
    try:
        assignment = services.assignment_take_reserved(
            annotator=request.user, comparison=comparison
        )
    except services.AnnotationError as refusal:
        return _render_refusal(request, project, refusal, status=286)
    if assignment.status == Assignment.Status.SUBMITTED:
        return _render_continue(request, comparison, status=286)
    context = _task_context(request.user, project, assignment=assignment)
    context["form"].initial["then_continue"] = True  # from "Write a prompt": continue after it
    return _render_task(request, context, status=286)


@login_required
@require_POST
def pair_cancel(request, job_id):
    job = _generation_job(request.user, job_id)
    services.pair_generation_cancel(annotator=request.user, job=job)
    # A queued job ends at once; a running one at its next step, so the page keeps polling.
    return _pair_status_response(request, job)


# --- demonstrations and the annotator's own work --------------------------------------------------


@login_required
def demonstrate(request, project_id):
    project = _active_project(project_id)
    template = "annotation/demonstrate.html#demonstration" if request.htmx else "annotation/demonstrate.html"
    form = DemonstrationForm(request.POST if request.method == "POST" else None)
    saved = False
    refusal = _access_refusal(request.user, project)
    if refusal is not None:
        context = {"project": project, "refusal": refusal}
        return render(request, template, context, status=422 if request.method == "POST" else 200)
    if request.method == "POST" and form.is_valid():
        try:
            services.demonstration_submit(
                annotator=request.user,
                project=project,
                dialogue_id=form.cleaned_data["dialogue_id"],
                text=form.cleaned_data["text"],
            )
        except (services.AnnotationError, ValidationError) as refusal:
            form.add_error(None, getattr(refusal, "messages", [str(refusal)])[0])
        else:
            saved = True
            form = DemonstrationForm()
    dialogue = selectors.dialogue_for_demonstration(annotator=request.user, project=project)
    if form.errors:
        dialogue = selectors.dialogue_get_for_demonstration(
            annotator=request.user, project=project, dialogue_id=form.data.get("dialogue_id")
        ) or dialogue
    elif dialogue is not None:
        form.initial["dialogue_id"] = dialogue.pk
    context = {"project": project, "form": form, "dialogue": dialogue, "saved": saved}
    return render(request, template, context, status=422 if form.errors else 200)


@login_required
@require_GET
def my_judgments(request):
    user = request.user
    judgments = list(selectors.judgments_of(annotator=user)[:200])
    context = {
        "rows": [(j, selectors.judgment_shown(judgment=j)) for j in judgments],
        "skips": selectors.skips_of(annotator=user)[:200],
        "demonstrations": selectors.demonstrations_of(annotator=user)[:200],
    }
    return render(request, "annotation/judgments.html", context)


@login_required
@require_GET
def my_judgment(request, judgment_id):
    if judgment_id > MAX_ID:
        raise Http404("No such judgment of yours.")
    judgment = selectors.judgment_get_for_annotator(
        annotator=request.user, judgment_id=judgment_id
    )
    return render(request, "annotation/judgment.html", selectors.judgment_detail_for(judgment=judgment))
