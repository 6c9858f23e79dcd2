"""`{{ text|markdown }}`: a response or turn as sanitised Markdown (annotation/rendering.py)."""

from django import template
from django.utils.safestring import mark_safe

from annotation.rendering import markdown_render

register = template.Library()


@register.filter
def markdown(text):
    # Safe to mark: markdown_render escapes raw HTML and nh3 keeps only an allow-list of tags.
    return mark_safe(markdown_render(text=str(text or "")))  # noqa: S308
