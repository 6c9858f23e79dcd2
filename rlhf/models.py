"""RLHF: policy versions (SFT, RLHF-V1, V2, ...) and their lineage."""

from django.db import models


class PolicyVersion(models.Model):
    class Kind(models.TextChoices):
        BASE = "base", "Base / SFT checkpoint"
        REJECTION_SAMPLING = "rejection_sampling", "Rejection sampling fine-tune"
        PPO = "ppo", "PPO"
        SFT = "sft", "Supervised fine-tune"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.BASE)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    checkpoint_path = models.CharField(max_length=500)
    is_active = models.BooleanField(
        default=True, help_text="Active versions write the responses of new comparisons."
    )
    metrics = models.JSONField(
        default=dict, blank=True,
        help_text="reward_vs_k (rejection sampling), ppo_iterations (PPO), win_rate (evaluate_policy).",
    )
    config = models.JSONField(default=dict, blank=True, help_text="The job's config that made it.")
    data = models.JSONField(
        default=dict, blank=True,
        help_text="What it was trained on: projects, prompt counts, reward models, pooled versions.",
    )
    job = models.ForeignKey(
        "margin.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The job that made it.",
    )
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def lineage(self):
        """This version, its parent, the parent's parent, ... back to the base model."""
        version, chain = self, []
        while version is not None:
            chain.append(version)
            version = version.parent
        return chain
