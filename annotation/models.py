"""Annotation: projects, batches, dialogues, responses, comparisons, assignments, judgments."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core import vocabulary as words

User = settings.AUTH_USER_MODEL


class Objective(models.TextChoices):
    HELPFULNESS = "helpfulness", "Helpfulness"
    SAFETY = "safety", "Safety"


class MarginScheme(models.TextChoices):
    NONE = "none", "No margin"
    SMALL = "small", "Small margin (1, 2/3, 1/3, 0)"
    LARGE = "large", "Large margin (3, 2, 1, 0)"


class Strength(models.TextChoices):
    """The paper's four rating levels, strongest first (Llama 2, sec. 3.2.1)."""

    SIGNIFICANTLY_BETTER = words.SIGNIFICANTLY_BETTER, words.STRENGTH_LABELS[words.SIGNIFICANTLY_BETTER]
    BETTER = words.BETTER, words.STRENGTH_LABELS[words.BETTER]
    SLIGHTLY_BETTER = words.SLIGHTLY_BETTER, words.STRENGTH_LABELS[words.SLIGHTLY_BETTER]
    NEGLIGIBLY_BETTER = words.NEGLIGIBLY_BETTER, words.STRENGTH_LABELS[words.NEGLIGIBLY_BETTER]


class AttentionPolicy(models.TextChoices):
    WARN = "warn", "Warn the annotator"
    BLOCK = "block", "Pause the annotator until staff look"


class VisibleProjectManager(models.Manager):
    """Every project but the staging areas of imports in progress (dataio/staging.py): no page,
    queue, export, dashboard or training-data query may read half an import."""

    def get_queryset(self):
        return super().get_queryset().filter(is_staging=False)


class Project(models.Model):
    name = models.CharField(max_length=200, unique=True)
    objective = models.CharField(max_length=16, choices=Objective.choices)
    guidelines = models.TextField(help_text="Shown to annotators one click away on every task.")
    judgments_per_comparison = models.PositiveSmallIntegerField(
        default=3, help_text="Distinct annotators wanted per comparison (overlap for agreement)."
    )
    margin_scheme = models.CharField(
        max_length=8, choices=MarginScheme.choices, default=MarginScheme.SMALL
    )
    lease_seconds = models.PositiveIntegerField(
        default=15 * 60, help_text="How long an annotator holds a comparison before it returns."
    )
    is_active = models.BooleanField(default=True)
    # Quality control (issue 5): gold comparisons are mixed silently into queues at this rate.
    gold_share = models.FloatField(
        default=0.1, help_text="Share of served comparisons taken from gold ones (0 to 1)."
    )
    attention_policy = models.CharField(
        max_length=8, choices=AttentionPolicy.choices, default=AttentionPolicy.WARN,
        help_text="What a failed attention check does: warn the annotator, or pause them.",
    )
    qualification_golds = models.PositiveSmallIntegerField(
        default=0, help_text="Gold comparisons an annotator judges first; 0 turns the round off."
    )
    qualification_min_accuracy = models.FloatField(
        default=0.8, help_text="Share of qualification golds to get right to go on."
    )
    # Off by default: the Llama 2 protocol always picks a side (sec. 3.2.1). Teams that want it get
    # a third answer, stored as choice "tie" like imported ties, which the RM builder skips.
    allow_tie = models.BooleanField(
        default=False, help_text="Offer annotators a third answer: tie / both bad."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    is_staging = models.BooleanField(
        default=False, editable=False, help_text="An import's staging area, hidden until it is published."
    )

    objects = VisibleProjectManager()
    with_staging = models.Manager()  # dataio/staging.py only

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(judgments_per_comparison__gte=1), name="project_wants_a_judgment"
            )
        ]

    def __str__(self):
        return self.name

    @property
    def is_safety(self):
        return self.objective == Objective.SAFETY


class Batch(models.Model):
    """A collection round (the paper's weekly batch); reward models are tracked per batch."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    number = models.PositiveIntegerField()
    is_open = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["project", "number"]
        verbose_name_plural = "batches"
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="batch_number_per_project")
        ]

    def __str__(self):
        return f"{self.project} · batch {self.number}"


class Dialogue(models.Model):
    """A conversation; its turns are the context of every comparison made on it."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="dialogues")
    author = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="dialogues",
        help_text="The annotator who wrote the prompt; empty for imported dialogues.",
    )
    source = models.CharField(
        max_length=200, blank=True, help_text="Import source (file, data set) when not written here."
    )
    source_key = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="Content hash of the imported record."
    )
    is_adversarial = models.BooleanField(
        default=False, help_text="Safety tag: the prompt tries to elicit unsafe behaviour."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Dialogue {self.pk}"

    def messages(self, upto=None):
        """Chat messages of the first `upto` turns, as the model's chat template expects."""
        turns = self.turns.all()[:upto] if upto is not None else self.turns.all()
        return [{"role": t.role, "content": t.content} for t in turns]


class Turn(models.Model):
    class Role(models.TextChoices):
        SYSTEM = words.SYSTEM
        USER = words.USER
        ASSISTANT = words.ASSISTANT

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="turns")
    index = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField()

    class Meta:
        ordering = ["dialogue", "index"]
        constraints = [
            models.UniqueConstraint(fields=["dialogue", "index"], name="turn_index_per_dialogue")
        ]

    def __str__(self):
        return f"{self.role}: {self.content[:60]}"


class Response(models.Model):
    """A candidate assistant reply to the first `context_length` turns of a dialogue."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="responses")
    context_length = models.PositiveIntegerField(help_text="Turns of the dialogue it answers.")
    text = models.TextField()
    policy_version = models.ForeignKey(
        "rlhf.PolicyVersion", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="responses",
    )
    model_name = models.CharField(
        max_length=200, blank=True, help_text="Who wrote it when not one of our policy versions."
    )
    sampling = models.JSONField(default=dict, blank=True, help_text="Temperature, top_p, seed...")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Response {self.pk}"


class Comparison(models.Model):
    """Two responses to the same context, judged in one batch."""

    batch = models.ForeignKey(Batch, on_delete=models.PROTECT, related_name="comparisons")
    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="comparisons")
    context_length = models.PositiveIntegerField()
    response_a = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    response_b = models.ForeignKey(Response, on_delete=models.PROTECT, related_name="+")
    reserved_for = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="reserved_comparisons",
        help_text="Write-a-prompt pairs are judged by the annotator who wrote the prompt.",
    )
    judgments_wanted = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Overrides the project's setting when set."
    )
    is_gold = models.BooleanField(default=False)
    is_attention_check = models.BooleanField(
        default=False, help_text="A gold comparison with an obvious answer; a miss triggers the "
        "project's attention policy."
    )
    gold_choice = models.CharField(max_length=1, blank=True, choices=[("a", "A"), ("b", "B")])
    source = models.CharField(
        max_length=200, blank=True, help_text="Import source (data set, file, line) when imported."
    )
    metadata = models.JSONField(default=dict, blank=True, help_text="Imported extras (scenario...).")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=~Q(response_a=models.F("response_b")), name="comparison_two_responses"
            )
        ]

    def __str__(self):
        return f"Comparison {self.pk}"

    @property
    def wanted(self):
        return self.judgments_wanted or self.batch.project.judgments_per_comparison


class Assignment(models.Model):
    """An annotator's lease on a comparison. One row per (annotator, comparison), ever."""

    class Status(models.TextChoices):
        OPEN = "open"
        SUBMITTED = "submitted"
        SKIPPED = "skipped"

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="assignments")
    annotator = models.ForeignKey(User, on_delete=models.CASCADE, related_name="assignments")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    a_on_left = models.BooleanField(help_text="Random left/right order shown to the annotator.")
    served_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    skip_reason = models.CharField(max_length=500, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "comparison"], name="one_assignment_per_annotator"
            )
        ]
        indexes = [models.Index(fields=["annotator", "status", "expires_at"])]

    def __str__(self):
        return f"{self.annotator} → {self.comparison} ({self.status})"


class Judgment(models.Model):
    class Choice(models.TextChoices):
        A = words.CHOICE_A, words.CHOICE_LABELS[words.CHOICE_A]
        B = words.CHOICE_B, words.CHOICE_LABELS[words.CHOICE_B]
        TIE = words.CHOICE_TIE, words.CHOICE_LABELS[words.CHOICE_TIE]  # imports, allow_tie projects

    comparison = models.ForeignKey(Comparison, on_delete=models.CASCADE, related_name="judgments")
    annotator = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="judgments"
    )
    external_annotator = models.CharField(
        max_length=200, blank=True, help_text="Rater id for imported judgments."
    )
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="judgment"
    )
    choice = models.CharField(max_length=3, choices=Choice.choices)
    strength = models.CharField(
        max_length=24, choices=Strength.choices, blank=True,
        help_text="Empty for imported labels that carry no strength (HH-RLHF, PandaLM).",
    )
    response_a_safe = models.BooleanField(null=True, blank=True)
    response_b_safe = models.BooleanField(null=True, blank=True)
    a_on_left = models.BooleanField(null=True, help_text="Order shown; empty for imports.")
    seconds_spent = models.FloatField(null=True, blank=True)
    rationale = models.TextField(blank=True)
    metadata = models.JSONField(
        default=dict, blank=True, help_text="Imported extras, e.g. Tulu's per-completion acceptability."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "comparison"], name="one_judgment_per_annotator"
            ),
            models.UniqueConstraint(
                fields=["external_annotator", "comparison"],
                condition=~Q(external_annotator=""),
                name="one_judgment_per_external_annotator",
            ),
        ]

    def __str__(self):
        return f"Judgment {self.pk} on {self.comparison_id}: {self.choice} {self.strength}"

    @property
    def chosen_safe(self):
        return {"a": self.response_a_safe, "b": self.response_b_safe}.get(self.choice)


class AnnotatorProfile(models.Model):
    """Staff's controls over one annotator. Reward-model data drops judgments of annotators with
    `exclude_from_training`; paused annotators get no new work."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="annotator_profile")
    is_paused = models.BooleanField(default=False)
    paused_reason = models.CharField(max_length=300, blank=True)
    exclude_from_training = models.BooleanField(default=False)
    attention_failures = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Profile of {self.user}"


class Adjudication(models.Model):
    """Staff's final answer on a low-agreement comparison (the review screen)."""

    comparison = models.OneToOneField(
        Comparison, on_delete=models.CASCADE, related_name="adjudication"
    )
    choice = models.CharField(max_length=1, choices=[("a", "A"), ("b", "B")])
    strength = models.CharField(max_length=24, choices=Strength.choices)
    staff = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Adjudication of {self.comparison_id}: {self.choice} {self.strength}"


class Demonstration(models.Model):
    """An annotator-written ideal answer to a dialogue's context, for SFT."""

    dialogue = models.ForeignKey(Dialogue, on_delete=models.CASCADE, related_name="demonstrations")
    context_length = models.PositiveIntegerField()
    annotator = models.ForeignKey(User, on_delete=models.PROTECT, related_name="demonstrations")
    text = models.TextField()
    seconds_spent = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["annotator", "dialogue", "context_length"],
                name="one_demonstration_per_annotator_and_context",
            )
        ]


class AuditEvent(models.Model):
    """Who changed what, written in the same transaction as the change (Zulip-style)."""

    actor = models.ForeignKey(User, null=True, on_delete=models.SET_NULL)
    verb = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.PositiveBigIntegerField(null=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
