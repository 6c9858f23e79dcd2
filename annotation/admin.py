from django.contrib import admin, messages

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
    fields = ["annotator", "external_annotator", "choice", "strength", "response_a_safe",
              "response_b_safe", "a_on_left", "seconds_spent", "created_at"]
    readonly_fields = fields


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["pk", "batch", "dialogue", "context_length", "is_gold", "created_at"]
    list_filter = ["batch__project", "batch", "is_gold"]
    raw_id_fields = ["dialogue", "response_a", "response_b", "reserved_for"]
    inlines = [JudgmentInline]


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "annotator", "comparison", "status", "served_at", "expires_at"]
    list_filter = ["status", "comparison__batch__project"]
    raw_id_fields = ["comparison"]


@admin.register(Judgment)
class JudgmentAdmin(admin.ModelAdmin):
    list_display = ["pk", "comparison", "annotator", "external_annotator", "choice", "strength",
                    "response_a_safe", "response_b_safe", "seconds_spent", "created_at"]
    list_filter = ["strength", "choice", "comparison__batch__project"]
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


@admin.register(AnnotatorProfile)
class AnnotatorProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "is_paused", "exclude_from_training"]
    list_filter = ["is_paused", "exclude_from_training"]
    search_fields = ["user__username"]


@admin.register(Adjudication)
class AdjudicationAdmin(admin.ModelAdmin):
    list_display = ["comparison", "choice", "strength", "staff", "created_at"]
    raw_id_fields = ["comparison"]
