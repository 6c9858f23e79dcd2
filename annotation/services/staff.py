"""Staff actions from the dashboard: projects, annotator controls, adjudication."""

from django.core.exceptions import ValidationError
from django.db import transaction

from annotation.models import Adjudication, AnnotatorProfile, Comparison, Project, Strength
from annotation.services.audit import audit_record
from annotation.services.batches import batch_open


def project_create(*, actor, **fields):
    """A new project with its first batch open, so annotators can start at once."""
    with transaction.atomic():
        project = Project(**fields)
        project.full_clean()
        project.save()
        audit_record(actor=actor, verb="project_create", obj=project)
        batch_open(project=project, actor=actor)
    return project


def project_update(*, project, actor, **fields):
    with transaction.atomic():
        for name, value in fields.items():
            setattr(project, name, value)
        project.full_clean()
        project.save(update_fields=list(fields))
        audit_record(actor=actor, verb="project_update", obj=project, fields=sorted(fields))
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
        audit_record(actor=actor, verb="annotator_profile_update", obj=profile,
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
        audit_record(actor=staff, verb="comparison_adjudicate", obj=comparison, choice=choice,
               strength=strength, make_gold=make_gold, make_attention_check=make_attention_check)
    return adjudication
