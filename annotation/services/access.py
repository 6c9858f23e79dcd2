"""Who may do annotator work: one rule, checked by every annotator service (issue 15 item 3)."""

from annotation.models import AnnotatorProfile
from annotation.selectors import qualification_status


class AnnotationError(Exception):
    """A refusal the annotator should read as is (shown in the page, not a stack trace)."""


class AnnotationAccessError(AnnotationError):
    """The annotator may do no such work now (paused, qualification): the page shows why
    instead of the work."""


def annotator_access_check(*, annotator, project, in_round=False):
    """Raise AnnotationAccessError unless `annotator` may do this work in `project` now.

    - Paused (by staff, or by a missed attention check under the block policy): no work at all,
      in any project.
    - Failed the project's qualification round: no work in that project (judging, skipping,
      undoing, writing prompts, continuing dialogues, demonstrations); other projects stay open.
    - Still in the round: only the round's work, i.e. the gold queue and skipping or undoing in
      it (`in_round=True`); data-producing work outside it waits until the round is passed.

    Returns the annotator's qualification_status in the project.
    """
    profile = AnnotatorProfile.objects.filter(user=annotator).first()
    if profile is not None and profile.is_paused:
        raise AnnotationAccessError(
            "Staff paused your annotation work"
            + (f" ({profile.paused_reason})" if profile.paused_reason else "")
            + "; ask them to resume it."
        )
    qualification = qualification_status(annotator=annotator, project=project)
    if qualification["state"] == "failed":
        raise AnnotationAccessError(
            "You did not pass this project's qualification round; staff will review it with you."
        )
    if qualification["state"] == "in_progress" and not in_round:
        raise AnnotationAccessError(
            "Finish this project's qualification round first "
            f"({qualification['judged']} of {qualification['needed']} test comparisons judged)."
        )
    return qualification
