"""Annotator screens. Views parse, call a service or selector, and render a page or partial."""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation import selectors, services
from annotation.forms import SKIP_REASONS, DemonstrationForm, JudgmentForm, PromptForm, SkipForm
from annotation.models import Assignment, Comparison, Project
from margin.models import Job

TASK = "annotation/_task.html"
MAX_ID = 2**63 - 1  # the largest primary key a database row can have


def _task_context(user, project, *, assignment=None, form=None, error=None, status=200):
    """Context for the #task fragment: the annotator's current comparison, or why there is none."""
    if assignment is None and error is None:
        try:
            assignment = services.assignment_next(annotator=user, project=project)
        except services.AnnotationError as refusal:
            error = str(refusal)
    context = {"project": project, "error": error, "skip_reasons": SKIP_REASONS}
    if assignment is not None:
        context.update(selectors.comparison_context_for(assignment=assignment))
        context["form"] = form or JudgmentForm(project=project)
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


@login_required
@require_GET
def home(request):
    rows = selectors.projects_for_annotator(annotator=request.user)
    return render(request, "annotation/home.html", {"rows": rows})


@login_required
@require_GET
def compare(request, project_id):
    project = _active_project(project_id)
    return _render_task(request, _task_context(request.user, project))


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
    if assignment.comparison.reserved_for_id == request.user.pk:
        return _render_continue(request, assignment.comparison)
    if getattr(judgment, "attention_failed", False):
        # An attention check was missed: say so (warn policy) or show the pause (block policy).
        context = _task_context(request.user, project)
        context["attention_warning"] = (
            "That was an attention check with a clear answer, and your choice missed it. "
            "Please read both responses fully before judging."
        )
        return _render_task(request, context)
    if not request.htmx:
        return redirect("annotation:compare", project_id=project.pk)
    return _render_task(request, _task_context(request.user, project))


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
        return redirect("annotation:compare", project_id=project.pk)
    return _render_task(request, _task_context(request.user, project))


@login_required
@require_POST
def undo(request, project_id):
    project = _active_project(project_id)
    try:
        assignment = services.judgment_undo_last(annotator=request.user, project=project)
    except services.AnnotationError as refusal:
        return _render_task(request, _task_context(request.user, project, error=str(refusal)), 422)
    if not request.htmx:
        return redirect("annotation:compare", project_id=project.pk)
    return _render_task(request, _task_context(request.user, project, assignment=assignment))


# --- write a prompt, generate a pair, compare, continue the dialogue ------------------------------


def _render_generating(request, job, status=200):
    template = "annotation/_task_generating.html" if request.htmx else "annotation/write.html"
    return render(request, template, {"job": job, "project": job_project(job)}, status=status)


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


@login_required
def write(request, project_id):
    project = _active_project(project_id)
    form = PromptForm(request.POST if request.method == "POST" else None)
    refusal = _access_refusal(request.user, project)
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
    template = "annotation/_write_form.html" if request.htmx else "annotation/write.html"
    context = {"project": project, "form": form, "refusal": refusal}
    return render(request, template, context, status=status)


@login_required
@require_POST
def continue_dialogue(request, comparison_id):
    comparison = get_object_or_404(
        Comparison, pk=comparison_id, judgments__annotator=request.user
    )
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


@login_required
@require_GET
def pair_status(request, job_id):
    """Polled while the worker generates; swaps in the comparison and stops polling (286)."""
    job = get_object_or_404(Job, pk=job_id, kind=Job.Kind.GENERATE_PAIR, created_by=request.user)
    if not job.is_finished:
        return _render_generating(request, job)
    project = job_project(job)
    if job.state != Job.State.SUCCEEDED:
        error = "Generating the responses failed; write the prompt again or tell staff."
        return _render_task(request, _task_context(request.user, project, error=error), 286)
    comparison = Comparison.objects.get(pk=job.result["comparison_id"])
    try:
        assignment = services.assignment_take_reserved(
            annotator=request.user, comparison=comparison
        )
    except services.AnnotationError as refusal:
        return _render_refusal(request, project, refusal, status=286)
    if assignment.status == Assignment.Status.SUBMITTED:
        return _render_continue(request, comparison, status=286)
    return _render_task(
        request, _task_context(request.user, project, assignment=assignment), status=286
    )


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
    judgments = selectors.judgments_of(annotator=request.user)[:200]
    return render(request, "annotation/judgments.html", {"judgments": judgments})


@login_required
@require_GET
def my_judgment(request, judgment_id):
    judgment = selectors.judgment_get_for_annotator(
        annotator=request.user, judgment_id=judgment_id
    )
    return render(request, "annotation/judgment.html", {"judgment": judgment})
