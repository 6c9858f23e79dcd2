"""Collection batches: opened and closed by staff; new comparisons go to the newest open one."""

from django.db import transaction
from django.utils import timezone

from annotation.models import Batch
from annotation.services.access import AnnotationError
from annotation.services.audit import audit_record


def batch_open(*, project, actor=None):
    with transaction.atomic():
        last = Batch.objects.filter(project=project).order_by("-number").first()
        batch = Batch.objects.create(project=project, number=(last.number + 1) if last else 1)
        audit_record(actor=actor, verb="batch_open", obj=batch)
    return batch


def batch_close(*, batch, actor=None):
    with transaction.atomic():
        Batch.objects.filter(pk=batch.pk).update(is_open=False, closed_at=timezone.now())
        audit_record(actor=actor, verb="batch_close", obj=batch)
    batch.refresh_from_db()
    return batch


def batch_current(*, project):
    """The newest open batch: where new comparisons go."""
    batch = Batch.objects.filter(project=project, is_open=True).order_by("-number").first()
    if batch is None:
        raise AnnotationError(f"Project “{project}” has no open batch; ask staff to open one.")
    return batch
