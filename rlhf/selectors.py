"""Read queries of the policy jobs: which prompts a job trains or evaluates on, which version
a name means."""

from __future__ import annotations

from dataclasses import dataclass

from annotation.models import Dialogue
from core.heldout import prompt_is_heldout, prompt_key
from rlhf.models import PolicyVersion
from rlhf.pairs import policy_version_default


@dataclass(frozen=True)
class PolicyPrompt:
    """A prompt as the policy jobs use it: the chat messages, and whether the combined reward
    takes the safety RM's score on it (a safety project, or a dialogue tagged adversarial)."""

    messages: list
    is_safety: bool
    dialogue_id: int | None = None

    @property
    def key(self) -> str:
        return prompt_key(self.messages)


def policy_version_resolve(name):
    """The named version, else the newest active one, else the default base model."""
    if name:
        return PolicyVersion.objects.get(name=name)
    return PolicyVersion.objects.filter(is_active=True).order_by("-created_at").first() or policy_version_default()


def heldout_fraction_for(version, wanted: float) -> float:
    """The held-out fraction `evaluate_policy` may use on `version`: at most the smallest one any
    job in its lineage trained with, so every prompt it evaluates on was held out of all of them."""
    fraction, seen = wanted, set()
    while version is not None and version.pk not in seen:
        seen.add(version.pk)
        trained = version.config.get("heldout_fraction") if isinstance(version.config, dict) else None
        if isinstance(trained, (int, float)):
            fraction = min(fraction, trained)
        version = version.parent
    return fraction


def policy_prompts(*, project_name="", split="train", heldout_fraction=0.1, limit=None) -> list[PolicyPrompt]:
    """The first user turn of each dialogue, training or held-out part, one per distinct prompt.

    The part is core/heldout.py's, by the prompt's text: the one the reward-model builder uses, so
    with the same fraction PPO never trains on a prompt `evaluate_policy` (or the reward model's
    evaluation) holds out.
    """
    dialogues = Dialogue.objects.select_related("project").order_by("pk")
    if project_name:
        dialogues = dialogues.filter(project__name=project_name)
    prompts, seen = [], set()
    for dialogue in dialogues.iterator():
        messages = dialogue.messages(upto=1)
        if not messages or messages[0]["role"] != "user":
            continue
        key = prompt_key(messages)
        if key in seen:
            continue
        seen.add(key)
        if prompt_is_heldout(key, fraction=heldout_fraction) != (split == "heldout"):
            continue
        prompts.append(PolicyPrompt(messages, dialogue.project.is_safety or dialogue.is_adversarial, dialogue.pk))
        if limit and len(prompts) == limit:
            break
    return prompts


def policy_versions_with_weights():
    """Versions whose checkpoint is complete in the model store (newest first): what a reward model
    or a fine-tune can start from. A served model registered without weights is not among them."""
    from modelruntime.modelstore import checkpoint_is_complete

    versions = PolicyVersion.objects.exclude(checkpoint_path="").order_by("-created_at")
    return [version for version in versions if checkpoint_is_complete(version.checkpoint_path)]
