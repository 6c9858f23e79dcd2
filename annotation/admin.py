"""The admin of annotation rows. Edits of judgments, comparisons and annotator profiles leave an
audit event; the audit trail itself can be read, never changed or deleted (issue 15)."""

from django.contrib import admin, messages
from django.db import models, transaction
from django.forms.models import model_to_dict
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from annotation import services
from annotation.models import (
    Adjudication,
    AnnotatorProfile,
    Assignment,
    AuditEvent,
    Batch,
    Comparison,
    Demonstration,
    Dialogue,
    Judgment,
    Project,
    Response,
    Turn,
)


def _plain(value):
    """A value as the audit event's JSON can hold it (rows by primary key)."""
    if isinstance(value, models.Model):
        return value.pk
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


class AuditedAdmin(admin.ModelAdmin):
    """Every add, change and delete made here writes an AuditEvent in the same transaction
    (the admin's add/change/delete views are atomic; bulk deletes are made so below)."""

    def save_model(self, request, obj, form, change):
        changed = {name: [_plain(form.initial.get(name)), _plain(form.cleaned_data.get(name))]
                   for name in form.changed_data} if change else {}
        super().save_model(request, obj, form, change)
        services.audit_record(actor=request.user, verb="admin_change" if change else "admin_add",
                              obj=obj, changed=changed)

    def delete_model(self, request, obj):
        self._deletion_record(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            for obj in queryset:
                self._deletion_record(request, obj)
            super().delete_queryset(request, queryset)

    def _deletion_record(self, request, obj):
        row = {name: _plain(value) for name, value in model_to_dict(obj).items()}
        services.audit_record(actor=request.user, verb="admin_delete", obj=obj, row=row)


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "objective", "judgments_per_comparison", "margin_scheme", "is_active"]
    list_filter = ["objective", "is_active"]
    search_fields = ["name"]
    actions = ["open_batch"]

    @admin.action(description="Open a new batch")
    def open_batch(self, request, queryset):
        for project in queryset:
            batch = services.batch_open(project=project, actor=request.user)
            self.message_user(request, f"Opened {batch}.", messages.SUCCESS)


@admin.register(Batch)
class BatchAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "number", "is_open", "created_at", "closed_at"]
    list_filter = ["project", "is_open"]
    readonly_fields = ["closed_at"]
    actions = ["close_batches"]

    @admin.action(description="Close the selected batches")
    def close_batches(self, request, queryset):
        for batch in queryset.filter(is_open=True):
            services.batch_close(batch=batch, actor=request.user)
        self.message_user(request, "Closed.", messages.SUCCESS)


class TurnInline(admin.TabularInline):
    model = Turn
    extra = 0


@admin.register(Dialogue)
class DialogueAdmin(admin.ModelAdmin):
    list_display = ["pk", "project", "author", "source", "is_adversarial", "created_at"]
    list_filter = ["project", "is_adversarial"]
    search_fields = ["turns__content", "source"]
    inlines = [TurnInline]
    raw_id_fields = ["author"]


@admin.register(Response)
class ResponseAdmin(admin.ModelAdmin):
    list_display = ["pk", "dialogue", "context_length", "policy_version", "model_name"]
    list_filter = ["policy_version"]
    search_fields = ["text", "model_name"]
    raw_id_fields = ["dialogue"]


class JudgmentInline(admin.TabularInline):
    model = Judgment
    extra = 0
    can_delete = False  # deleted from the Judgment admin, which audits it
    fields = ["annotator", "external_annotator", "choice", "strength", "response_a_safe",
              "response_b_safe", "a_on_left", "seconds_spent", "created_at"]
    readonly_fields = fields


def _text_block(text):
    """Model or user text as the admin shows it: escaped, line breaks and indentation kept."""
    return format_html('<pre class="admin-text">{}</pre>', text or "")


def _prompt_of(comparison):
    first = comparison.dialogue.turns.first()
    return Truncator(first.content if first else "").chars(80)


PROMPT_SEARCH = ["dialogue__turns__content", "response_a__text", "response_b__text", "source"]


@admin.register(Comparison)
class ComparisonAdmin(AuditedAdmin):
    list_display = ["pk", "batch", "prompt", "context_length", "is_gold", "created_at"]
    list_filter = ["batch__project", "batch", "is_gold"]
    list_select_related = ["batch__project", "dialogue"]
    search_fields = PROMPT_SEARCH
    raw_id_fields = ["dialogue", "response_a", "response_b", "reserved_for"]
    # The text itself beside the row ids: "Dialogue 1" and "Response 1" tell staff nothing.
    readonly_fields = ["dialogue_text", "response_a_text", "response_b_text"]
    inlines = [JudgmentInline]

    @admin.display(description="Prompt")
    def prompt(self, comparison):
        return _prompt_of(comparison)

    @admin.display(description="Dialogue (the context the responses answer)")
    def dialogue_text(self, comparison):
        if comparison.pk is None:
            return "—"
        turns = comparison.dialogue.turns.all()[: comparison.context_length]
        return format_html_join("", '<p><strong>{}</strong></p><pre class="admin-text">{}</pre>',
                                ((turn.get_role_display(), turn.content) for turn in turns))

    @admin.display(description="Response A")
    def response_a_text(self, comparison):
        return _text_block(comparison.response_a.text) if comparison.pk else "—"

    @admin.display(description="Response B")
    def response_b_text(self, comparison):
        return _text_block(comparison.response_b.text) if comparison.pk else "—"


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "annotator", "comparison", "status", "served_at", "expires_at"]
    list_filter = ["status", "comparison__batch__project"]
    search_fields = ["annotator__username", "skip_reason", "comparison__dialogue__turns__content"]
    raw_id_fields = ["comparison"]


@admin.register(Judgment)
class JudgmentAdmin(AuditedAdmin):
    list_display = ["pk", "comparison", "annotator", "external_annotator", "choice", "strength",
                    "response_a_safe", "response_b_safe", "seconds_spent", "created_at"]
    list_filter = ["strength", "choice", "comparison__batch__project"]
    search_fields = ["annotator__username", "external_annotator", "rationale",
                     "comparison__dialogue__turns__content"]
    raw_id_fields = ["comparison", "assignment"]


@admin.register(Demonstration)
class DemonstrationAdmin(admin.ModelAdmin):
    list_display = ["pk", "dialogue", "annotator", "created_at"]
    raw_id_fields = ["dialogue"]


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "verb", "object_type", "object_id"]
    list_filter = ["verb", "object_type"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(AuditedAdmin):
    list_display = ["user", "is_paused", "exclude_from_training"]
    list_filter = ["is_paused", "exclude_from_training"]
    search_fields = ["user__username"]


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["comparison", "choice", "strength", "staff", "created_at"]
    raw_id_fields = ["comparison"]
