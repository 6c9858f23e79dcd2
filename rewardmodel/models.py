"""The reward-model registry: what was trained, from what, on which data, and how well it does."""

from django.db import models


class RewardModel(models.Model):
    class Objective(models.TextChoices):
        HELPFULNESS = "helpfulness", "Helpfulness"
        SAFETY = "safety", "Safety"

    name = models.CharField(max_length=100, unique=True)
    objective = models.CharField(max_length=16, choices=Objective.choices)
    project = models.ForeignKey(
        "annotation.Project", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="reward_models",
    )
    base_model = models.CharField(max_length=500, help_text="Checkpoint it was initialised from.")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children",
        help_text="The reward model this one replaces (the previous iteration).",
    )
    config = models.JSONField(default=dict, blank=True)
    data = models.JSONField(
        default=dict, blank=True,
        help_text="Projects, batches, pair counts (own, mixed, held out) and skip reasons.",
    )
    metrics = models.JSONField(default=dict, blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)
    safety_gate = models.FloatField(
        null=True, blank=True,
        help_text="Sigmoid score below which PPO takes this safety RM's reward (empty: Llama 2's 0.15), "
                  "set from its precision / recall curve.",
    )
    job = models.ForeignKey(
        "margin.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name


class RewardModelEvaluation(models.Model):
    """Accuracy of one reward model on one batch's held-out pairs (or another named set)."""

    reward_model = models.ForeignKey(RewardModel, on_delete=models.CASCADE, related_name="evaluations")
    batch = models.ForeignKey(
        "annotation.Batch", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    label = models.CharField(max_length=200, help_text="What was evaluated, e.g. a batch's held-out part.")
    pairs = models.PositiveIntegerField()
    accuracy = models.FloatField(null=True)
    per_strength = models.JSONField(default=dict, blank=True)
    per_safety_bin = models.JSONField(default=dict, blank=True)
    calibration = models.JSONField(default=list, blank=True)
    length = models.JSONField(
        default=dict, blank=True, help_text="Longer-wins / shorter-wins baselines and length-balanced accuracy."
    )
    safety_curve = models.JSONField(
        default=dict, blank=True, help_text="Unsafe-response precision / recall per threshold and score histograms."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["reward_model", "batch__number"]

    def __str__(self):
        return f"{self.reward_model} on {self.label}: {self.accuracy}"
