"""The annotator's own text: write-a-prompt dialogues, continuing them, demonstrations."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from annotation.models import Demonstration, Dialogue, Judgment, Turn
from annotation.selectors import dialogue_get_for_demonstration
from annotation.services.access import AnnotationError, annotator_access_check
from annotation.services.assignment import rows_lock
from annotation.services.audit import audit_record
from annotation.services.batches import batch_current
from margin.jobs import job_cancel_request, job_create
from margin.models import Job


def _clean_text(value, field):
    text = (value or "").strip()
    if not text:
        raise ValidationError({field: "This field cannot be empty."})
    if "\x00" in text:
        raise ValidationError({field: "Text must not contain NUL characters."})
    if len(text) > settings.MARGIN_MAX_TEXT_CHARS:
        raise ValidationError(
            {field: f"Keep it under {settings.MARGIN_MAX_TEXT_CHARS} characters (got {len(text)})."}
        )
    return text


def _pair_generation_request(*, dialogue, annotator):
    """Queue the job that generates the next pair, within the annotator's generation quota."""
    # Lock the annotator's row so two concurrent requests cannot both pass the count.
    rows_lock(get_user_model().objects.filter(pk=annotator.pk)).first()
    generating = Job.objects.filter(
        kind=Job.Kind.GENERATE_PAIR,
        created_by=annotator,
        state__in=(Job.State.QUEUED, Job.State.RUNNING),
    ).count()
    if generating >= settings.MARGIN_MAX_OPEN_GENERATIONS:
        raise AnnotationError(
            f"You have {generating} pair{'s' if generating != 1 else ''} generating; "
            "judge them first, then write the next prompt."
        )
    return job_create(
        kind=Job.Kind.GENERATE_PAIR,
        params={
            "dialogue_id": dialogue.pk,
            "context_length": dialogue.turns.count(),
            "annotator_id": annotator.pk,
            "batch_id": batch_current(project=dialogue.project).pk,
        },
        created_by=annotator,
    )


def dialogue_start(*, annotator, project, prompt, is_adversarial=False):
    """The annotator writes a prompt; the worker generates two responses for them to compare."""
    prompt = _clean_text(prompt, "prompt")
    annotator_access_check(annotator=annotator, project=project)
    with transaction.atomic():
        batch_current(project=project)
        dialogue = Dialogue.objects.create(
            project=project, author=annotator, is_adversarial=is_adversarial
        )
        Turn.objects.create(dialogue=dialogue, index=0, role=Turn.Role.USER, content=prompt)
        job = _pair_generation_request(dialogue=dialogue, annotator=annotator)
        audit_record(actor=annotator, verb="dialogue_start", obj=dialogue, job=job.pk)
    return job


def dialogue_continue(*, annotator, comparison_id, prompt):
    """Next turn: the chosen response becomes context, the annotator's new message the prompt."""
    prompt = _clean_text(prompt, "prompt")
    with transaction.atomic():
        judgment = (
            Judgment.objects.filter(annotator=annotator, comparison_id=comparison_id)
            .select_related(
                "comparison__dialogue__project", "comparison__response_a", "comparison__response_b"
            )
            .first()
        )
        if judgment is None:
            raise AnnotationError("Judge this comparison before continuing its dialogue.")
        comparison = judgment.comparison
        dialogue = comparison.dialogue
        annotator_access_check(annotator=annotator, project=dialogue.project)
        if dialogue.author_id != annotator.pk:
            raise AnnotationError("Only the annotator who wrote this dialogue can continue it.")
        # The dialogue row first, as judgment_undo_last locks it: an undo that got in before us
        # has deleted the judgment we would continue from.
        rows_lock(Dialogue.objects.filter(pk=dialogue.pk)).first()
        if not Judgment.objects.filter(pk=judgment.pk).exists():
            raise AnnotationError("Judge this comparison before continuing its dialogue.")
        if dialogue.turns.count() != comparison.context_length:
            raise AnnotationError("This dialogue has already been continued.")
        chosen = comparison.response_a if judgment.choice == "a" else comparison.response_b
        index = comparison.context_length
        Turn.objects.create(
            dialogue=dialogue, index=index, role=Turn.Role.ASSISTANT, content=chosen.text
        )
        Turn.objects.create(dialogue=dialogue, index=index + 1, role=Turn.Role.USER, content=prompt)
        job = _pair_generation_request(dialogue=dialogue, annotator=annotator)
        audit_record(actor=annotator, verb="dialogue_continue", obj=dialogue, job=job.pk)
    return job


def pair_generation_cancel(*, annotator, job):
    """The annotator stops their pair's generation: a queued job ends at once, a running one at
    its next progress report. Their prompt stays on the dialogue to be written again."""
    if job.created_by_id != annotator.pk or job.kind != Job.Kind.GENERATE_PAIR:
        raise AnnotationError("This generation is not yours to cancel.")
    if job.is_finished:
        return job
    with transaction.atomic():
        job_cancel_request(job=job)
        audit_record(actor=annotator, verb="pair_generation_cancel", obj=job)
    return job


# --- demonstrations -------------------------------------------------------------------------------


def demonstration_submit(*, annotator, project, dialogue_id, text, seconds_spent=None):
    text = _clean_text(text, "text")
    annotator_access_check(annotator=annotator, project=project)
    with transaction.atomic():
        dialogue = dialogue_get_for_demonstration(
            annotator=annotator, project=project, dialogue_id=dialogue_id
        )
        if dialogue is None:
            raise AnnotationError("This prompt is not open to you for a demonstration.")
        context_length = dialogue.turns.count()
        try:
            demonstration = Demonstration.objects.create(
                dialogue=dialogue,
                context_length=context_length,
                annotator=annotator,
                text=text,
                seconds_spent=seconds_spent,
            )
        except IntegrityError as duplicate:
            raise AnnotationError("You already wrote an answer to this prompt.") from duplicate
        audit_record(actor=annotator, verb="demonstration_submit", obj=demonstration)
    return demonstration
