"""Read queries for the annotator screens. Access checks live here, not in templates."""

from datetime import timedelta

from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404
from django.utils import timezone

from annotation.models import (
    Assignment,
    Comparison,
    Demonstration,
    Dialogue,
    Judgment,
    Project,
    Turn,
)
from margin.models import Job


def comparisons_available_for(*, annotator, project, now=None):
    """Comparisons this annotator may take now, most complete first.

    Open batches only; never one they judged, skipped or hold; never one reserved for someone
    else; never past its wanted number of judgments + live leases of others.

    Counted with joins and GROUP BY (one pass over the judgments and leases) rather than two
    subqueries per comparison, which made every "next comparison" cost O(comparisons) index
    probes. A grouped query cannot be locked: services lock the chosen row by its id.
    """
    now = now or timezone.now()
    live_lease_of_other = Q(
        assignments__status=Assignment.Status.OPEN, assignments__expires_at__gt=now
    ) & ~Q(assignments__annotator=annotator)
    mine = Assignment.objects.filter(comparison=OuterRef("pk"), annotator=annotator).exclude(
        status=Assignment.Status.OPEN, expires_at__lte=now
    )
    return (
        Comparison.objects.filter(batch__project=project, batch__is_open=True)
        .filter(Q(reserved_for__isnull=True) | Q(reserved_for=annotator))
        .filter(~Exists(mine))
        .annotate(
            taken=Count("judgments", distinct=True)
            + Count("assignments", filter=live_lease_of_other, distinct=True),
            wanted_n=Coalesce(F("judgments_wanted"), F("batch__project__judgments_per_comparison")),
        )
        # Gold comparisons are judged by everyone: they measure annotators, not the data.
        .filter(Q(taken__lt=F("wanted_n")) | Q(is_gold=True))
        .order_by(F("reserved_for").desc(nulls_last=True), "-taken", "pk")
    )


def assignment_open_for(*, annotator, project, now=None):
    now = now or timezone.now()
    return (
        Assignment.objects.filter(
            annotator=annotator,
            comparison__batch__project=project,
            status=Assignment.Status.OPEN,
            expires_at__gt=now,
        )
        .select_related("comparison__batch__project", "comparison__dialogue")
        .order_by("served_at")
        .first()
    )


def assignment_get_for_annotator(*, annotator, comparison_id):
    """The annotator's own assignment on a comparison; 404 for anything else (no IDOR)."""
    assignment = (
        Assignment.objects.filter(annotator=annotator, comparison_id=comparison_id)
        .select_related("comparison__batch__project", "comparison__dialogue")
        .first()
    )
    if assignment is None:
        raise Http404("This comparison is not assigned to you.")
    return assignment


def comparison_context_for(*, assignment):
    """What the annotator sees: earlier turns, the prompt, and the responses in shown order.

    Blind: no model name, version or sampling setting leaves this function.
    """
    comparison = assignment.comparison
    turns = list(comparison.dialogue.turns.all()[: comparison.context_length])
    prompt, history = (turns[-1], turns[:-1]) if turns else (None, [])
    a, b = comparison.response_a.text, comparison.response_b.text
    left, right = (a, b) if assignment.a_on_left else (b, a)
    return {
        "assignment": assignment,
        "comparison": comparison,
        "project": comparison.batch.project,
        "history": history,
        "prompt": prompt,
        "left_text": left,
        "right_text": right,
    }


def projects_for_annotator(*, annotator):
    """Active projects with what is waiting for this annotator and what they did today."""
    today = timezone.now() - timedelta(hours=24)
    rows = []
    for project in Project.objects.filter(is_active=True):
        rows.append(
            {
                "project": project,
                "waiting": comparisons_available_for(annotator=annotator, project=project).count(),
                "judged_today": Judgment.objects.filter(
                    annotator=annotator,
                    comparison__batch__project=project,
                    created_at__gte=today,
                ).count(),
                "skipped_today": Assignment.objects.filter(
                    annotator=annotator,
                    comparison__batch__project=project,
                    status=Assignment.Status.SKIPPED,
                    served_at__gte=today,
                ).count(),
                "demonstrations_today": Demonstration.objects.filter(
                    annotator=annotator, dialogue__project=project, created_at__gte=today
                ).count(),
            }
        )
    return rows


def progress_for(*, annotator, project, showing=False):
    """What is left for the annotator in the project's open batches, and what they did today.

    `showing`: a comparison is on screen, leased to them, so the queue no longer counts it.
    """
    today = timezone.now() - timedelta(hours=24)
    left = comparisons_available_for(annotator=annotator, project=project).count()
    return {
        "left": left + (1 if showing else 0),
        "batches": ", ".join(str(b) for b in project.batches.filter(is_open=True)),
        "judged_today": Judgment.objects.filter(
            annotator=annotator, comparison__batch__project=project, created_at__gte=today
        ).count(),
    }


def judgment_shown(*, judgment):
    """A judgment as its annotator saw it: left / right (or tie), safety labels per side."""
    a_on_left = judgment.a_on_left is not False  # imports have no order: A is "left"
    sides = ("a", "b") if a_on_left else ("b", "a")
    labels = {True: "safe", False: "unsafe", None: None}
    a_safe, b_safe = labels[judgment.response_a_safe], labels[judgment.response_b_safe]
    if judgment.choice == Judgment.Choice.TIE:
        choice = "tie"
    else:
        choice = "left" if judgment.choice == sides[0] else "right"
    return {
        "choice": choice,
        "strength": judgment.strength,
        "left_safe": a_safe if a_on_left else b_safe,
        "right_safe": b_safe if a_on_left else a_safe,
        "rationale": judgment.rationale,
    }


def judgments_of(*, annotator):
    return (
        Judgment.objects.filter(annotator=annotator)
        .select_related("comparison__batch__project")
        .order_by("-created_at")
    )


def skips_of(*, annotator):
    return (
        Assignment.objects.filter(annotator=annotator, status=Assignment.Status.SKIPPED)
        .select_related("comparison__batch__project")
        .order_by("-served_at")
    )


def demonstrations_of(*, annotator):
    return (
        Demonstration.objects.filter(annotator=annotator)
        .select_related("dialogue__project")
        .order_by("-created_at")
    )


def judgment_detail_for(*, judgment):
    """The detail page: the dialogue up to the prompt and both responses in the order shown."""
    comparison = judgment.comparison
    turns = list(comparison.dialogue.turns.all()[: comparison.context_length])
    a, b = comparison.response_a.text, comparison.response_b.text
    left, right = (b, a) if judgment.a_on_left is False else (a, b)
    return {
        "judgment": judgment,
        "shown": judgment_shown(judgment=judgment),
        "history": turns[:-1],
        "prompt": turns[-1] if turns else None,
        "left_text": left,
        "right_text": right,
    }


def pair_job_pending_for(*, annotator, project):
    """The annotator's pair still generating in this project (a reload finds it again)."""
    generating = Job.objects.filter(
        kind=Job.Kind.GENERATE_PAIR,
        created_by=annotator,
        state__in=(Job.State.QUEUED, Job.State.RUNNING),
    ).order_by("-created_at")
    for job in generating:  # a few at most: MARGIN_MAX_OPEN_GENERATIONS
        if Dialogue.objects.filter(pk=job.params.get("dialogue_id"), project=project).exists():
            return job
    return None


def pair_job_prompt(*, job):
    """The message the annotator wrote for this generation (the dialogue's last user turn)."""
    turn = (
        Turn.objects.filter(dialogue_id=job.params.get("dialogue_id"), role=Turn.Role.USER)
        .order_by("-index")
        .first()
    )
    return turn.content if turn else ""


def judgment_get_for_annotator(*, annotator, judgment_id):
    judgment = judgments_of(annotator=annotator).filter(pk=judgment_id).first()
    if judgment is None:
        raise Http404("No such judgment of yours.")
    return judgment


def _dialogues_open_for_demonstration(*, annotator, project):
    """Dialogues ending in a user turn, imported or written by this annotator (never another's)."""
    last_turn = Turn.objects.filter(dialogue=OuterRef("pk")).order_by("-index")
    return (
        Dialogue.objects.filter(project=project, project__is_active=True)
        .filter(Q(author__isnull=True) | Q(author=annotator))
        .annotate(last_role=Subquery(last_turn.values("role")[:1]))
        .filter(last_role=Turn.Role.USER)
    )


def dialogue_get_for_demonstration(*, annotator, project, dialogue_id):
    if not str(dialogue_id or "").isdigit():
        return None
    return (
        _dialogues_open_for_demonstration(annotator=annotator, project=project)
        .filter(pk=dialogue_id)
        .first()
    )


def dialogue_for_demonstration(*, annotator, project):
    """The least-demonstrated prompt this annotator has not answered yet."""
    answered = Demonstration.objects.filter(dialogue=OuterRef("pk"), annotator=annotator)
    return (
        _dialogues_open_for_demonstration(annotator=annotator, project=project)
        .filter(~Exists(answered))
        .annotate(n_demos=Count("demonstrations"))
        .order_by("n_demos", "pk")
        .first()
    )




def qualification_status(*, annotator, project):
    """Where the annotator stands in the project's qualification round (gold comparisons first).

    state: "off" (no round), "in_progress", "passed" or "failed"; with judged / correct / needed.
    The round asks for as many golds as the project has, up to qualification_golds.
    """
    wanted = project.qualification_golds
    if not wanted:
        return {"state": "off", "judged": 0, "correct": 0, "needed": 0}
    golds = Comparison.objects.filter(batch__project=project, is_gold=True).exclude(gold_choice="")
    needed = min(wanted, golds.count())
    judged = Judgment.objects.filter(annotator=annotator, comparison__in=golds)
    correct = judged.filter(choice=F("comparison__gold_choice")).count()
    judged = judged.count()
    if judged < needed:
        state = "in_progress"
    elif needed and correct / judged < project.qualification_min_accuracy:
        state = "failed"
    else:
        state = "passed"
    return {"state": state, "judged": judged, "correct": correct, "needed": needed}
