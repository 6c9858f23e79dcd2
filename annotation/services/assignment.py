"""Leasing comparisons to annotators: the queue, reserved write-a-prompt pairs, skips.

Comments say why (snapshot, savepoint, lock order); the database constraints stand behind them.
"""

import random
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from annotation.models import Assignment, Comparison
from annotation.selectors import comparisons_available_for
from annotation.services.access import AnnotationError, annotator_access_check
from annotation.services.audit import audit_record


def rows_lock(queryset, skip_locked=False):
    """Row lock (of the queried table only) on PostgreSQL; on SQLite, where Django ignores it,
    the IMMEDIATE transaction already serialises writers."""
    return queryset.select_for_update(of=("self",), skip_locked=skip_locked)


def lease_end(project, now):
    """When a lease taken now runs out."""
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
    qualification = annotator_access_check(annotator=annotator, project=project, in_round=True)
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
        qualifying = qualification["state"] == "in_progress"
        comparison = _comparison_pick(
            annotator=annotator, project=project, now=now, qualifying=qualifying
        )
        if comparison is None:
            return None
        assignment, _ = Assignment.objects.update_or_create(
            annotator=annotator,
            comparison=comparison,
            defaults={
                "status": Assignment.Status.OPEN,
                "a_on_left": random.random() < 0.5,
                "served_at": now,
                "expires_at": lease_end(project, now),
            },
        )
    return assignment


# Its own generator: the gold draw must not shift the left/right order draws (random.random).
_GOLD_DRAW = random.Random()


def _comparison_pick(*, annotator, project, now, qualifying):
    """The next comparison: gold only during the qualification round, then gold mixed in
    silently at the project's gold_share (the annotator cannot tell which is which)."""
    candidates = comparisons_available_for(annotator=annotator, project=project, now=now)
    if qualifying:
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
                rows_lock(Comparison.objects.filter(pk=pk), skip_locked=skip_locked)
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
    annotator_access_check(annotator=annotator, project=comparison.batch.project)
    now = timezone.now()
    with transaction.atomic():
        assignment, created = Assignment.objects.get_or_create(
            annotator=annotator,
            comparison=comparison,
            defaults={
                "a_on_left": random.random() < 0.5,
                "served_at": now,
                "expires_at": lease_end(comparison.batch.project, now),
            },
        )
        if not created and assignment.status == Assignment.Status.OPEN:
            assignment.expires_at = lease_end(comparison.batch.project, now)
            assignment.save(update_fields=["expires_at"])
    return assignment


def assignment_skip(*, annotator, comparison_id, reason):
    reason = (reason or "").strip()
    if not reason:
        raise AnnotationError("Say why you skip (field “reason”).")
    with transaction.atomic():
        assignment = assignment_lock_held(annotator=annotator, comparison_id=comparison_id)
        annotator_access_check(
            annotator=annotator, project=assignment.comparison.batch.project, in_round=True
        )
        if assignment.status != Assignment.Status.OPEN:
            raise AnnotationError(f"This comparison is already {assignment.status}.")
        assignment.status = Assignment.Status.SKIPPED
        assignment.skip_reason = reason[:500]
        assignment.save(update_fields=["status", "skip_reason"])
        audit_record(actor=annotator, verb="assignment_skip", obj=assignment, reason=reason[:500])
    return assignment


def assignment_lock_held(*, annotator, comparison_id):
    """Lock the annotator's own assignment on a comparison (with its project), inside the
    caller's transaction; refuse one that is not theirs."""
    assignment = (
        rows_lock(Assignment.objects.filter(annotator=annotator, comparison_id=comparison_id))
        .select_related("comparison__batch__project")
        .first()
    )
    if assignment is None:
        raise AnnotationError("This comparison is not assigned to you.")
    return assignment
