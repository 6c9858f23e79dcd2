"""The audit trail: every state change writes its row in the same transaction (Zulip's way)."""

from annotation.models import AuditEvent


def audit_record(*, actor, verb, obj, **data):
    """One AuditEvent for `verb` done by `actor` (None for the system) to the row `obj`."""
    return AuditEvent.objects.create(
        actor=actor, verb=verb, object_type=type(obj).__name__, object_id=obj.pk, data=data
    )
