"""State changes of the annotation app. Every transaction lives here, with its audit row."""

import random
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from annotation.models import (
    Adjudication,
    AnnotatorProfile,
    AttentionPolicy,
    Assignment,
    AuditEvent,
    Batch,
    Comparison,
    Demonstration,
    Dialogue,
    Judgment,
    Project,
    Response,
    Strength,
    Turn,
)
from annotation.selectors import (
    comparisons_available_for,
    dialogue_get_for_demonstration,
    qualification_status,
)
from margin.jobs import job_create
from margin.models import Job


class AnnotationError(Exception):
    """A refusal the annotator should read as is (shown in the page, not a stack trace)."""


def _audit(*, actor, verb, obj, **data):
    AuditEvent.objects.create(
        actor=actor, verb=verb, object_type=type(obj).__name__, object_id=obj.pk, data=data
    )


def _lock(queryset, skip_locked=False):
    """Row lock (of the queried table only) on PostgreSQL; on SQLite, where Django ignores it,
    the IMMEDIATE transaction already serialises writers."""
    return queryset.select_for_update(of=("self",), skip_locked=skip_locked)


# --- batches --------------------------------------------------------------------------------------


def batch_open(*, project, actor=None):
    with transaction.atomic():
        last = Batch.objects.filter(project=project).order_by("-number").first()
        batch = Batch.objects.create(project=project, number=(last.number + 1) if last else 1)
        _audit(actor=actor, verb="batch_open", obj=batch)
    return batch


def batch_close(*, batch, actor=None):
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(is_open=False, closed_at=timezone.now())
        _audit(actor=actor, verb="batch_close", obj=batch)
    batch.refresh_from_db()
    return batch


def batch_current(*, project):
    """The newest open batch: where new comparisons go."""
    batch = Batch.objects.filter(project=project, is_open=True).order_by("-number").first()
    if batch is None:
        raise AnnotationError(f"Project “{project}” has no open batch; ask staff to open one.")
    return batch


# --- assignment -----------------------------------------------------------------------------------


def _lease_window(project, now):
    return now + timedelta(seconds=project.lease_seconds)


# What the task screen shows of a leased comparison (selectors.comparison_context_for).
_TASK_RELATED = (
    "comparison__dialogue",
    "comparison__response_a",
    "comparison__response_b",
    "comparison__batch__project",
)


def assignment_next(*, annotator, project):
    """The annotator's current comparison in this project, leasing a new one when needed.

    Returns None when nothing is waiting. Safe under concurrent requests: the capacity check and
    the insert run in one write transaction (row locks on PostgreSQL, IMMEDIATE on SQLite).
    """
    profile = AnnotatorProfile.objects.filter(user=annotator).first()
    if profile is not None and profile.is_paused:
        raise AnnotationError(
            "Staff paused your annotation work"
            + (f" ({profile.paused_reason})" if profile.paused_reason else "")
            + "; ask them to resume it."
        )
    now = timezone.now()
    with transaction.atomic():
        held = Assignment.objects.filter(
            annotator=annotator, status=Assignment.Status.OPEN, expires_at__gt=now
        )
        current = held.filter(comparison__batch__project=project, comparison__batch__is_open=True)
        current = (
            current.select_related(*_TASK_RELATED).order_by("served_at").first()
        )
        if current:
            return current
        if held.count() >= settings.MARGIN_MAX_OPEN_LEASES:
            raise AnnotationError(
                f"You already hold {settings.MARGIN_MAX_OPEN_LEASES} open comparisons in other "
                "projects; finish or skip one of those first."
            )
        comparison = _comparison_pick(annotator=annotator, project=project, now=now)
        if comparison is None:
            return None
        assignment, _ = Assignment.objects.update_or_create(
            annotator=annotator,
            comparison=comparison,
            defaults={
                "status": Assignment.Status.OPEN,
                "a_on_left": random.random() < 0.5,
                "served_at": now,
                "expires_at": _lease_window(project, now),
            },
        )
    return assignment


# Its own generator: the gold draw must not shift the left/right order draws (random.random).
_GOLD_DRAW = random.Random()


def _comparison_pick(*, annotator, project, now):
    """The next comparison: gold only during the qualification round, then gold mixed in
    silently at the project's gold_share (the annotator cannot tell which is which)."""
    candidates = comparisons_available_for(annotator=annotator, project=project, now=now)
    qualification = qualification_status(annotator=annotator, project=project)
    if qualification["state"] == "failed":
        raise AnnotationError(
            "You did not pass this project's qualification round; staff will review it with you."
        )
    if qualification["state"] == "in_progress":
        queues = [candidates.filter(is_gold=True)]
    else:
        gold, plain = candidates.filter(is_gold=True), candidates.filter(is_gold=False)
        gold_first = project.gold_share > 0 and _GOLD_DRAW.random() < project.gold_share
        queues = [gold, plain] if gold_first else [plain, gold]
    # skip_locked first: concurrent annotators each take a different comparison instead of
    # waiting. When every candidate was locked by someone else, wait for them rather than say
    # that nothing is waiting (SQLite has no row locks: one pass).
    row_locks = connection.features.has_select_for_update_skip_locked
    for skip_locked in (True, False) if row_locks else (False,):
        for queue in queues:
            comparison = _comparison_lock_first(queue, annotator=annotator, skip_locked=skip_locked)
            if comparison is not None:
                return comparison
    return None


# How many of the best candidates to fetch at once; the first one we can lock is taken.
_SHORTLIST = 16


def _comparison_lock_first(queue, *, annotator, skip_locked):
    """Lock the best comparison of `queue` that still has room once locked, or None.

    `queue` is grouped (see comparisons_available_for), so it cannot be locked itself: take a
    shortlist of ids from it and lock the first of those we can, in the same order.
    """
    related = [name.removeprefix("comparison__") for name in _TASK_RELATED]
    while True:
        ids = list(queue.values_list("pk", flat=True)[:_SHORTLIST])
        if not ids:
            return None
        for pk in ids:
            if not connection.features.has_select_for_update:
                # SQLite's IMMEDIATE transaction counted after taking the write lock: no recount.
                return Comparison.objects.select_related(*related).get(pk=pk)
            savepoint = transaction.savepoint()
            comparison = (
                _lock(Comparison.objects.filter(pk=pk), skip_locked=skip_locked)
                .select_related(*related)
                .first()
            )
            # PostgreSQL (READ COMMITTED) counted the leases in a snapshot taken before the
            # lock was granted, so a lease committed in between was missed and the comparison
            # could go to one annotator too many. Count again, in a fresh snapshot, now the row
            # is ours.
            if comparison is not None and _has_room(comparison, annotator):
                transaction.savepoint_commit(savepoint)
                return comparison
            # Let go of a row we will not use: holding it while the wait pass waits for another
            # annotator's row could deadlock the two of us.
            transaction.savepoint_rollback(savepoint)
        queue = queue.exclude(pk__in=ids)


def _has_room(comparison, annotator):
    """Capacity as comparisons_available_for counts it: judgments + live leases of others."""
    if comparison.is_gold:
        return True
    leases = comparison.assignments.filter(
        status=Assignment.Status.OPEN, expires_at__gt=timezone.now()
    ).exclude(annotator=annotator)
    return comparison.judgments.count() + leases.count() < comparison.wanted


def assignment_take_reserved(*, annotator, comparison):
    """Lease a comparison generated for this annotator's own prompt (write-a-prompt flow)."""
    if comparison.reserved_for_id != annotator.pk:
        raise AnnotationError("This comparison was generated for another annotator.")
    now = timezone.now()
    with transaction.atomic():
        assignment, created = Assignment.objects.get_or_create(
            annotator=annotator,
            comparison=comparison,
            defaults={
                "a_on_left": random.random() < 0.5,
                "served_at": now,
                "expires_at": _lease_window(comparison.batch.project, now),
            },
        )
        if not created and assignment.status == Assignment.Status.OPEN:
            assignment.expires_at = _lease_window(comparison.batch.project, now)
            assignment.save(update_fields=["expires_at"])
    return assignment


def assignment_skip(*, annotator, comparison_id, reason):
    reason = (reason or "").strip()
    if not reason:
        raise AnnotationError("Say why you skip (field “reason”).")
    with transaction.atomic():
        assignment = _lock(
            Assignment.objects.filter(annotator=annotator, comparison_id=comparison_id)
        ).first()
        if assignment is None:
            raise AnnotationError("This comparison is not assigned to you.")
        if assignment.status != Assignment.Status.OPEN:
            raise AnnotationError(f"This comparison is already {assignment.status}.")
        assignment.status = Assignment.Status.SKIPPED
        assignment.skip_reason = reason[:500]
        assignment.save(update_fields=["status", "skip_reason"])
        _audit(actor=annotator, verb="assignment_skip", obj=assignment, reason=reason[:500])
    return assignment


# --- judgments ------------------------------------------------------------------------------------


def _validate_judgment(*, project, chosen_side, strength, left_safe, right_safe):
    errors = {}
    if chosen_side not in ("left", "right"):
        errors["choice"] = "Pick the better response (left or right)."
    if strength not in Strength.values:
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
    """
    now = timezone.now()
    with transaction.atomic():
        assignment = (
            _lock(Assignment.objects.filter(annotator=annotator, comparison_id=comparison_id))
            .select_related("comparison__batch__project")
            .first()
        )
        if assignment is None:
            raise AnnotationError("This comparison is not assigned to you.")
        comparison = assignment.comparison
        project = comparison.batch.project
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
        _lock(Comparison.objects.filter(pk=comparison.pk)).first()
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
        a_safe, b_safe = (left_safe, right_safe) if assignment.a_on_left else (right_safe, left_safe)
        try:
            judgment = Judgment.objects.create(
                comparison=comparison,
                annotator=annotator,
                assignment=assignment,
                choice="a" if chose_left == assignment.a_on_left else "b",
                strength=strength,
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
        _audit(actor=annotator, verb="judgment_submit", obj=judgment)
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
    _audit(actor=judgment.annotator, verb="attention_check_failed", obj=judgment,
           policy=project.attention_policy)
    return True


def judgment_undo_last(*, annotator, project):
    """Take back the annotator's newest judgment in this project while its batch is open.

    The comparison is leased to them again, so it comes back as their current task.
    """
    now = timezone.now()
    with transaction.atomic():
        judgment = (
            Judgment.objects.filter(annotator=annotator, comparison__batch__project=project)
            .select_related("assignment", "comparison__batch")
            .order_by("-created_at", "-pk")
            .first()
        )
        if judgment is None:
            raise AnnotationError("There is no judgment of yours to undo in this project.")
        if not judgment.comparison.batch.is_open:
            raise AnnotationError("Your last judgment's batch is closed; it can no longer change.")
        assignment = judgment.assignment
        _audit(
            actor=annotator,
            verb="judgment_undo",
            obj=judgment,
            choice=judgment.choice,
            strength=judgment.strength,
        )
        judgment.delete()
        assignment.status = Assignment.Status.OPEN
        assignment.served_at = now
        assignment.expires_at = _lease_window(project, now)
        assignment.save(update_fields=["status", "served_at", "expires_at"])
    return assignment


# --- write-a-prompt and multi-turn dialogues -------------------------------------------------------


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
    context_length = dialogue.turns.count()
    return job_create(
        kind=Job.Kind.GENERATE_PAIR,
        params={
            "dialogue_id": dialogue.pk,
            "context_length": context_length,
            "annotator_id": annotator.pk,
            "batch_id": batch_current(project=dialogue.project).pk,
        },
        created_by=annotator,
    )


def dialogue_start(*, annotator, project, prompt, is_adversarial=False):
    """The annotator writes a prompt; the worker generates two responses for them to compare."""
    prompt = _clean_text(prompt, "prompt")
    with transaction.atomic():
        batch_current(project=project)
        dialogue = Dialogue.objects.create(
            project=project, author=annotator, is_adversarial=is_adversarial
        )
        Turn.objects.create(dialogue=dialogue, index=0, role=Turn.Role.USER, content=prompt)
        job = _pair_generation_request(dialogue=dialogue, annotator=annotator)
        _audit(actor=annotator, verb="dialogue_start", obj=dialogue, job=job.pk)
    return job


def dialogue_continue(*, annotator, comparison_id, prompt):
    """Next turn: the chosen response becomes context, the annotator's new message the prompt."""
    prompt = _clean_text(prompt, "prompt")
    with transaction.atomic():
        judgment = (
            Judgment.objects.filter(annotator=annotator, comparison_id=comparison_id)
            .select_related("comparison__dialogue", "comparison__response_a", "comparison__response_b")
            .first()
        )
        if judgment is None:
            raise AnnotationError("Judge this comparison before continuing its dialogue.")
        comparison = judgment.comparison
        dialogue = comparison.dialogue
        if dialogue.author_id != annotator.pk:
            raise AnnotationError("Only the annotator who wrote this dialogue can continue it.")
        if dialogue.turns.count() != comparison.context_length:
            raise AnnotationError("This dialogue has already been continued.")
        chosen = comparison.response_a if judgment.choice == "a" else comparison.response_b
        index = comparison.context_length
        Turn.objects.create(
            dialogue=dialogue, index=index, role=Turn.Role.ASSISTANT, content=chosen.text
        )
        Turn.objects.create(dialogue=dialogue, index=index + 1, role=Turn.Role.USER, content=prompt)
        job = _pair_generation_request(dialogue=dialogue, annotator=annotator)
        _audit(actor=annotator, verb="dialogue_continue", obj=dialogue, job=job.pk)
    return job


def comparison_create(
    *, batch, dialogue, context_length, responses, reserved_for=None, judgments_wanted=None
):
    """Store two responses to a dialogue's context as a comparison in `batch`.

    `responses` is two dicts of Response fields (text, policy_version, model_name, sampling).
    """
    if len(responses) != 2:
        raise ValueError("A comparison needs exactly two responses.")
    with transaction.atomic():
        a, b = (
            Response.objects.create(dialogue=dialogue, context_length=context_length, **fields)
            for fields in responses
        )
        comparison = Comparison.objects.create(
            batch=batch,
            dialogue=dialogue,
            context_length=context_length,
            response_a=a,
            response_b=b,
            reserved_for=reserved_for,
            judgments_wanted=judgments_wanted,
        )
    return comparison


# --- demonstrations -------------------------------------------------------------------------------


def demonstration_submit(*, annotator, project, dialogue_id, text, seconds_spent=None):
    text = _clean_text(text, "text")
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
        _audit(actor=annotator, verb="demonstration_submit", obj=demonstration)
    return demonstration


# --- imports --------------------------------------------------------------------------------------


def pairs_import(*, project, batch, records, is_adversarial=False):
    """Store read PairRecords as unjudged comparisons; records already imported are skipped.

    All or nothing: one transaction for the whole file. Returns how many were added.
    """
    added = 0
    with transaction.atomic():
        known = set(
            Dialogue.objects.filter(project=project).exclude(source_key="")
            .values_list("source_key", flat=True)
        )
        for record in records:
            if record.source_key in known:
                continue
            known.add(record.source_key)
            dialogue = Dialogue.objects.create(
                project=project,
                source=record.source,
                source_key=record.source_key,
                is_adversarial=is_adversarial,
            )
            Turn.objects.bulk_create(
                Turn(dialogue=dialogue, index=i, role=m["role"], content=m["content"])
                for i, m in enumerate(record.context)
            )
            comparison_create(
                batch=batch,
                dialogue=dialogue,
                context_length=len(record.context),
                responses=[
                    {"text": record.response_a, "model_name": record.model_a or record.source},
                    {"text": record.response_b, "model_name": record.model_b or record.source},
                ],
            )
            added += 1
    return added


# --- staff: projects, annotators, review (the dashboard) -----------------------------------------


def project_create(*, actor, **fields):
    """A new project with its first batch open, so annotators can start at once."""
    with transaction.atomic():
        project = Project(**fields)
        project.full_clean()
        project.save()
        _audit(actor=actor, verb="project_create", obj=project)
        batch_open(project=project, actor=actor)
    return project


def project_update(*, project, actor, **fields):
    with transaction.atomic():
        for name, value in fields.items():
            setattr(project, name, value)
        project.full_clean()
        project.save(update_fields=list(fields))
        _audit(actor=actor, verb="project_update", obj=project, fields=sorted(fields))
    return project


def annotator_profile_update(*, user, actor, is_paused=None, exclude_from_training=None, reason=""):
    """Pause / resume an annotator, or exclude their judgments from reward-model training."""
    with transaction.atomic():
        profile, _ = AnnotatorProfile.objects.get_or_create(user=user)
        changes = {}
        if is_paused is not None:
            changes.update(is_paused=is_paused, paused_reason=(reason or "")[:300] if is_paused else "")
        if exclude_from_training is not None:
            changes["exclude_from_training"] = exclude_from_training
        for name, value in changes.items():
            setattr(profile, name, value)
        profile.save()
        _audit(actor=actor, verb="annotator_profile_update", obj=profile,
               **{k: v for k, v in changes.items() if k != "paused_reason"})
    return profile


def comparison_adjudicate(
    *, comparison, staff, choice, strength, note="", make_gold=False, make_attention_check=False
):
    """Staff's final answer on a disputed comparison; optionally it becomes a gold comparison
    (and an attention check)."""
    errors = {}
    if make_attention_check and not make_gold:
        errors["make_attention_check"] = "An attention check is a gold comparison: tick both."
    if choice not in ("a", "b"):
        errors["choice"] = "Pick response A or B."
    if strength not in Strength.values:
        errors["strength"] = "Pick one of the four strength levels."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        adjudication, _ = Adjudication.objects.update_or_create(
            comparison=comparison,
            defaults={"choice": choice, "strength": strength, "staff": staff, "note": note.strip()},
        )
        if make_gold:
            Comparison.objects.filter(pk=comparison.pk).update(
                is_gold=True, gold_choice=choice, is_attention_check=make_attention_check
            )
        _audit(actor=staff, verb="comparison_adjudicate", obj=comparison, choice=choice,
               strength=strength, make_gold=make_gold, make_attention_check=make_attention_check)
    return adjudication
