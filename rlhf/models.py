"""RLHF: policy versions (SFT, RLHF-V1, V2, ...) and their lineage."""

from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from rlhf.backends import ENV_NAME, LOCAL, OPENAI


class PolicyVersion(models.Model):
    class Kind(models.TextChoices):
        BASE = "base", "Base / SFT checkpoint"
        REJECTION_SAMPLING = "rejection_sampling", "Rejection sampling fine-tune"
        PPO = "ppo", "PPO"
        SFT = "sft", "Supervised fine-tune"
        DPO = "dpo", "DPO"
        GATT = "gatt", "Ghost Attention fine-tune"
        EXTERNAL = "external", "Trained elsewhere (OpenRLHF hand-off)"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=24, choices=Kind.choices, default=Kind.BASE)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    checkpoint_path = models.CharField(
        max_length=500, blank=True,
        help_text="Its weights in the model store; empty for a served model registered without them.",
    )
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
    # Where its responses come from (rlhf/backends.py). The API key itself never lands here:
    # only the name of the environment variable that holds it on the workers.
    backend = models.CharField(
        max_length=16, choices=[(LOCAL, "Local engine (in-process)"), (OPENAI, "OpenAI-compatible server")],
        default=LOCAL, help_text="Local: this worker's engine on the checkpoint. OpenAI: a vLLM / SGLang / TGI server.",
    )
    # Not a URLField: its validator wants a dotted domain, and servers sit at http://vllm:8000/v1.
    openai_base_url = models.CharField(
        "base URL", max_length=300, blank=True, help_text="The server's API root, e.g. http://gpu-1:8000/v1",
    )
    served_model = models.CharField(max_length=200, blank=True, help_text="The model name the server serves it under.")
    api_key_env = models.CharField(
        "API key variable", max_length=100, blank=True,
        help_text="Name of the environment variable holding the API key (not the key); empty: no key.",
    )
    max_in_flight = models.PositiveSmallIntegerField(
        default=16, help_text="Prompts whose request is open at once on the server (1-256).",
    )
    timeout_seconds = models.PositiveIntegerField(default=120, help_text="Per request, 1-3600 s.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.openai_base_url:
            url = urlparse(self.openai_base_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                errors["openai_base_url"] = f"{self.openai_base_url!r} is not an http(s) URL like http://gpu-1:8000/v1"
        if self.backend == OPENAI:
            if not self.openai_base_url:
                errors["openai_base_url"] = "an OpenAI-compatible backend needs the server's base URL"
            if not self.served_model:
                errors["served_model"] = "an OpenAI-compatible backend needs the served model's name"
        if self.api_key_env and not ENV_NAME.match(self.api_key_env):
            errors["api_key_env"] = ("the name of an environment variable (letters, digits, _), "
                                     "not the key itself")
        if not 1 <= self.max_in_flight <= 256:
            errors["max_in_flight"] = f"must be between 1 and 256, got {self.max_in_flight}"
        if not 1 <= self.timeout_seconds <= 3600:
            errors["timeout_seconds"] = f"must be between 1 and 3600 s, got {self.timeout_seconds}"
        if errors:
            raise ValidationError(errors)

    def lineage(self):
        """This version, its parent, the parent's parent, ... back to the base model."""
        version, chain = self, []
        while version is not None:
            chain.append(version)
            version = version.parent
        return chain


class SafetyPrompt(models.Model):
    """An adversarial prompt of the policy safety evaluation (Llama 2 sec. 4.4), with its risk
    category. Single-turn: `text` alone. Multi-turn: `messages` holds the dialogue so far, ending
    with the user turn the policy answers (`text` repeats that turn, for lists and search)."""

    text = models.TextField(help_text="The adversarial prompt (the last user turn of a multi-turn one).")
    messages = models.JSONField(
        default=list, blank=True,
        help_text='Multi-turn: [{"role": "user"|"assistant"|"system", "content": "..."}, ...] ending with a '
                  "user turn; empty: the text alone is the prompt.",
    )
    category = models.CharField(
        max_length=100, help_text="Risk category, e.g. illicit and criminal activities, hateful and harmful, "
                                  "unqualified advice (Llama 2's three).",
    )
    source = models.CharField(max_length=200, blank=True, help_text="Where it came from: a file, or staff.")
    # sha256 of the conversation: importing the same file twice adds nothing.
    key = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["category", "pk"]

    def __str__(self):
        return f"[{self.category}] {self.text[:60]}"

    def conversation(self) -> list[dict]:
        """The messages the policy answers: the multi-turn dialogue, or the text as one user turn."""
        return self.messages or [{"role": "user", "content": self.text}]

    def clean(self):
        from rlhf.safety_eval import safety_messages_problem

        problem = safety_messages_problem(self.messages) if self.messages else None
        if problem:
            raise ValidationError({"messages": problem})
        if self.messages:
            self.text = self.messages[-1]["content"]
        if not self.text.strip():
            raise ValidationError({"text": "write the prompt"})
        if not self.category.strip():
            raise ValidationError({"category": "name the risk category"})

    def save(self, *args, **kwargs):
        from rlhf.safety_eval import conversation_key

        self.key = conversation_key(self.conversation())
        super().save(*args, **kwargs)
