"""Background jobs: the database row is the record of truth, Celery carries only its id."""

from django.conf import settings
from django.db import models


class Job(models.Model):
    class Kind(models.TextChoices):
        GENERATE_PAIR = "generate_pair", "Generate a response pair"
        TRAIN_REWARD_MODEL = "train_reward_model", "Train a reward model"
        REJECTION_SAMPLE = "rejection_sample", "Rejection sampling"
        PPO = "ppo", "PPO"
        EVALUATE_POLICY = "evaluate_policy", "Evaluate a policy version"
        PUBLISH_SAMPLES = "publish_samples", "Publish samples for annotation"
        IMPORT_DATA = "import_data", "Import a data file"
        SFT = "sft", "Fine-tune on demonstrations"
        DPO = "dpo", "DPO"
        DPO_ITERATIVE = "dpo_iterative", "Iterative DPO"
        GATT = "gatt", "Ghost Attention fine-tune"
        RL_HANDOFF = "rl_handoff", "RL hand-off (OpenRLHF)"
        EVALUATE_SAFETY = "evaluate_safety", "Safety evaluation of a policy"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED_STATES = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    kind = models.CharField(max_length=32, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_step = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    log = models.TextField(blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When its id last went to the broker; the reconciler re-sends a job queued long after it.
    sent_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "lease_expires_at"])]

    def __str__(self):
        return f"{self.get_kind_display()} #{self.pk} ({self.state})"

    @property
    def is_finished(self):
        return self.state in self.FINISHED_STATES

    @property
    def percent(self):
        if self.state == self.State.SUCCEEDED:
            return 100
        if not self.progress_total:
            return 0
        return min(100, round(100 * self.progress_step / self.progress_total))
