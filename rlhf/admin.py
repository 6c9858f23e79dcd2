from django.contrib import admin

from rlhf.models import PolicyVersion


@admin.register(PolicyVersion)
class PolicyVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "parent", "is_active", "created_at"]
    list_filter = ["kind", "is_active"]
