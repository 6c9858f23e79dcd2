"""Who may do annotator work: one rule, checked by every annotator service."""


class AnnotationError(Exception):
    """A refusal the annotator should read as is (shown in the page, not a stack trace)."""
