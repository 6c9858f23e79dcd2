from django.contrib import admin

from rlhf.models import PolicyVersion, SafetyPrompt


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "is_active", "backend", "served_model", "job", "created_at"]
    list_filter = ["kind", "is_active", "backend"]
    search_fields = ["name", "served_model"]
    # Checkpoints are written by jobs into the model store; a path typed here could point anywhere.
    readonly_fields = ["checkpoint_path", "config", "data", "metrics", "job"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "parent", "is_active", "checkpoint_path", "notes"]}),
        ("Generation backend", {
            "fields": ["backend", "openai_base_url", "served_model", "api_key_env", "max_in_flight", "timeout_seconds"],
            "description": "Where this version's responses come from: this worker's engine, or an OpenAI-compatible "
                           "server (vLLM, SGLang, TGI). The API key stays in the workers' environment.",
        }),
        ("Training record", {"fields": ["config", "data", "metrics", "job"]}),
    ]


@admin.register(SafetyPrompt)
class SafetyPromptAdmin(admin.ModelAdmin):
    """Staff write adversarial prompts here; import_safety_prompts loads files of them."""

    list_display = ["text", "category", "source", "created_by", "created_at"]
    list_filter = ["category", "source"]
    search_fields = ["text", "category"]
    readonly_fields = ["created_by"]
    fields = ["text", "category", "messages", "source", "created_by"]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
