from django.contrib import admin

from rlhf.models import PolicyVersion


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "is_active", "job", "created_at"]
    list_filter = ["kind", "is_active"]
    readonly_fields = ["config", "data", "metrics", "job"]
