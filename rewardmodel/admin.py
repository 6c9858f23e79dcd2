from django.contrib import admin

from rewardmodel.models import RewardModel, RewardModelEvaluation


@admin.register(RewardModel)
class RewardModelAdmin(admin.ModelAdmin):
    list_display = ["name", "objective", "project", "parent", "created_at"]
    list_filter = ["objective"]
    search_fields = ["name"]
    # Checkpoints are written by jobs into the model store; a path typed here could point anywhere.
    readonly_fields = ["checkpoint_path", "config", "data", "metrics", "job"]


@admin.register(RewardModelEvaluation)
class RewardModelEvaluationAdmin(admin.ModelAdmin):
    list_display = ["reward_model", "label", "pairs", "accuracy", "created_at"]
