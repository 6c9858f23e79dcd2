from django.contrib import admin, messages

from margin.jobs import job_cancel_request
from margin.models import Job


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "state", "progress_step", "progress_total", "attempts",
                    "created_by", "created_at", "finished_at"]
    list_filter = ["kind", "state"]
    search_fields = ["kind", "state", "created_by__username", "log", "error"]
    readonly_fields = ["lease_owner", "lease_expires_at", "attempts", "started_at", "finished_at"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected jobs")
    def cancel(self, request, queryset):
        for job in queryset:
            job_cancel_request(job=job)
        self.message_user(request, "Cancel requested.", messages.SUCCESS)
