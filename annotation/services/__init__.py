"""State changes of the annotation app, one module per concern (as Zulip split its actions).
Every transaction lives here, with its audit row.

`from annotation.services import judgment_submit` and `services.judgment_submit` both work:
the public names are re-exported below.
"""

from annotation.services.access import (
    AnnotationAccessError,
    AnnotationError,
    annotator_access_check,
)
from annotation.services.assignment import (
    assignment_next,
    assignment_skip,
    assignment_take_reserved,
)
from annotation.services.audit import audit_record
from annotation.services.batches import batch_close, batch_current, batch_open
from annotation.services.comparisons import comparison_create
from annotation.services.dialogues import (
    demonstration_submit,
    dialogue_continue,
    dialogue_start,
    pair_generation_cancel,
)
from annotation.services.imports import (
    dialogue_create,
    judgments_import,
    staging_area_create,
    staging_area_dialogue_ids,
    staging_area_dialogues_delete,
    staging_area_get,
    staging_area_publish,
)
from annotation.services.judgments import judgment_submit, judgment_undo_last
from annotation.services.staff import (
    annotator_profile_update,
    comparison_adjudicate,
    project_create,
    project_update,
)

__all__ = [
    "AnnotationAccessError",
    "AnnotationError",
    "annotator_access_check",
    "annotator_profile_update",
    "assignment_next",
    "assignment_skip",
    "assignment_take_reserved",
    "audit_record",
    "batch_close",
    "batch_current",
    "batch_open",
    "comparison_adjudicate",
    "comparison_create",
    "demonstration_submit",
    "dialogue_continue",
    "dialogue_create",
    "dialogue_start",
    "judgment_submit",
    "judgment_undo_last",
    "judgments_import",
    "pair_generation_cancel",
    "project_create",
    "project_update",
    "staging_area_create",
    "staging_area_dialogue_ids",
    "staging_area_dialogues_delete",
    "staging_area_get",
    "staging_area_publish",
]
