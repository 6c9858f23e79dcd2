from django.contrib import admin

from rlhf.models import PolicyVersion


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "is_active", "job", "created_at"]
    list_filter = ["kind", "is_active"]
    # Checkpoints are written by jobs into the model store; a path typed here could point anywhere.
    readonly_fields = ["checkpoint_path", "config", "data", "metrics", "job"]
