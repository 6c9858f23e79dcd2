from django.contrib import admin

from rlhf.models import PolicyVersion


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
