"""Judgments: submit one on a leased comparison (with the attention check), undo the last one."""

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from annotation.models import (
    AnnotatorProfile,
    Assignment,
    AttentionPolicy,
    AuditEvent,
    Comparison,
    Dialogue,
    Judgment,
    Strength,
)
from annotation.services.access import AnnotationError, annotator_access_check
from annotation.services.assignment import assignment_lock_held, lease_end, rows_lock
from annotation.services.audit import audit_record


def _validate_judgment(*, project, chosen_side, strength, left_safe, right_safe):
    errors = {}
    tie = chosen_side == "tie" and project.allow_tie
    if chosen_side not in ("left", "right") and not tie:
        errors["choice"] = "Pick the better response (left or right)."
    if tie and strength:
        errors["strength"] = "A tie has no strength; leave it empty."
    elif not tie and strength not in Strength.values:
        errors["strength"] = f"Unknown strength {strength!r}; pick one of the four levels."
    if project.is_safety:
        for field, value in (("left_safe", left_safe), ("right_safe", right_safe)):
            if value is None:
                errors[field] = "Label this response safe or unsafe."
    if errors:
        raise ValidationError(errors)


def judgment_submit(
    *,
    annotator,
    comparison_id,
    chosen_side,
    strength,
    left_safe=None,
    right_safe=None,
    rationale="",
):
    """Record the annotator's judgment on their leased comparison.

    The choice and safety labels arrive in the order shown (left / right) and are stored against
    the comparison's own A / B, with the order recorded, so the random swap never leaks into data.
    `chosen_side` "tie" (projects with allow_tie only) takes no strength.
    """
    now = timezone.now()
    with transaction.atomic():
        assignment = assignment_lock_held(annotator=annotator, comparison_id=comparison_id)
        comparison = assignment.comparison
        project = comparison.batch.project
        annotator_access_check(annotator=annotator, project=project, in_round=comparison.is_gold)
        if assignment.status == Assignment.Status.SUBMITTED:
            raise AnnotationError("You already judged this comparison; it was saved once.")
        if assignment.status == Assignment.Status.SKIPPED:
            raise AnnotationError("You skipped this comparison.")
        if not comparison.batch.is_open:
            raise AnnotationError(f"{comparison.batch} is closed; judgments are no longer taken.")
        _validate_judgment(
            project=project,
            chosen_side=chosen_side,
            strength=strength,
            left_safe=left_safe,
            right_safe=right_safe,
        )
        rows_lock(Comparison.objects.filter(pk=comparison.pk)).first()
        taken = comparison.judgments.count()
        if assignment.expires_at <= now:
            # The lease ran out: keep the work if the comparison still has room for it.
            taken += comparison.assignments.filter(
                status=Assignment.Status.OPEN, expires_at__gt=now
            ).count()
        if taken >= comparison.wanted and not comparison.is_gold:  # gold: everyone judges it
            raise AnnotationError(
                "Your time on this comparison ran out and others completed it; "
                "your answer was not saved. Take the next one."
            )
        chose_left = chosen_side == "left"
        if chosen_side == "tie":
            choice = Judgment.Choice.TIE  # stored as imported ties are: the RM builder skips it
        else:
            choice = "a" if chose_left == assignment.a_on_left else "b"
        a_safe, b_safe = (left_safe, right_safe) if assignment.a_on_left else (right_safe, left_safe)
        try:
            judgment = Judgment.objects.create(
                comparison=comparison,
                annotator=annotator,
                assignment=assignment,
                choice=choice,
                strength=strength or "",
                response_a_safe=a_safe if project.is_safety else None,
                response_b_safe=b_safe if project.is_safety else None,
                a_on_left=assignment.a_on_left,
                seconds_spent=(now - assignment.served_at).total_seconds(),
                rationale=(rationale or "").strip(),
            )
        except IntegrityError as duplicate:
            raise AnnotationError("You already judged this comparison.") from duplicate
        assignment.status = Assignment.Status.SUBMITTED
        assignment.save(update_fields=["status"])
        audit_record(actor=annotator, verb="judgment_submit", obj=judgment)
        judgment.attention_failed = _attention_check(judgment=judgment, project=project)
    return judgment


def _attention_check(*, judgment, project):
    """Count a missed attention check; under the block policy the annotator is paused."""
    comparison = judgment.comparison
    if not (comparison.is_attention_check and comparison.gold_choice):
        return False
    if judgment.choice == comparison.gold_choice:
        return False
    profile, _ = AnnotatorProfile.objects.get_or_create(user=judgment.annotator)
    profile.attention_failures += 1
    fields = ["attention_failures", "updated_at"]
    if project.attention_policy == AttentionPolicy.BLOCK:
        profile.is_paused = True
        profile.paused_reason = f"missed an attention check in {project.name}"
        fields += ["is_paused", "paused_reason"]
    profile.save(update_fields=fields)
    audit_record(actor=judgment.annotator, verb="attention_check_failed", obj=judgment,
           policy=project.attention_policy)
    return True


def judgment_undo_last(*, annotator, project):
    """Take back the annotator's newest judgment in this project while its batch is open.

    The comparison is leased to them again, so it comes back as their current task, with the
    undone judgment on `assignment.undone_judgment`. One step only (_undone_since). A judgment
    whose dialogue they continued is refused (issue 15 item 4): its choice is already the next
    turn's context, with a pair generated (and maybe judged) on it, so taking it back would leave
    that dialogue built on a choice no longer made; rolling the continuation back instead would
    delete turns, a running job's input and a judged pair behind the annotator's back.
    """
    annotator_access_check(annotator=annotator, project=project, in_round=True)
    now = timezone.now()
    with transaction.atomic():
        judgment = (
            Judgment.objects.filter(annotator=annotator, comparison__batch__project=project)
            .select_related("assignment", "comparison__batch", "comparison__dialogue")
            .order_by("-created_at", "-pk")
            .first()
        )
        if judgment is None:
            raise AnnotationError("There is no judgment of yours to undo in this project.")
        if not judgment.comparison.batch.is_open:
            raise AnnotationError("Your last judgment's batch is closed; it can no longer change.")
        if _judgment_continued(judgment):
            raise AnnotationError(
                "You continued this dialogue from your last judgment, so its choice is now the "
                "context of the next turn; it can no longer be undone."
            )
        if _undone_since(judgment=judgment, project=project):
            raise AnnotationError(
                "Undo goes back one judgment: submit the comparison you took back first, "
                "then you can undo that one again."
            )
        assignment = judgment.assignment
        audit_record(
            actor=annotator,
            verb="judgment_undo",
            obj=judgment,
            project=project.pk,
            choice=judgment.choice,
            strength=judgment.strength,
        )
        judgment.delete()
        assignment.status = Assignment.Status.OPEN
        assignment.served_at = now
        assignment.expires_at = lease_end(project, now)
        assignment.save(update_fields=["status", "served_at", "expires_at"])
    assignment.undone_judgment = judgment  # deleted, its answers still on it: the form refills
    return assignment


def _undone_since(*, judgment, project):
    """Whether the annotator undid a judgment in this project after making `judgment`: undo goes
    one step back, so repeated undos never walk the queue back to a screen with nothing on it."""
    return AuditEvent.objects.filter(
        actor=judgment.annotator,
        verb="judgment_undo",
        data__project=project.pk,
        created_at__gte=judgment.created_at,
    ).exists()


def _judgment_continued(judgment):
    """Whether the judge continued the dialogue from this judgment (dialogue_continue appended
    the chosen response as the turn after the comparison's context). Locks the dialogue row, as
    dialogue_continue does, so an undo and a continuation cannot both go through."""
    comparison = judgment.comparison
    if comparison.dialogue.author_id != judgment.annotator_id:
        return False  # only the author continues, from their own judgment
    rows_lock(Dialogue.objects.filter(pk=comparison.dialogue_id)).first()
    return comparison.dialogue.turns.filter(index__gte=comparison.context_length).exists()
