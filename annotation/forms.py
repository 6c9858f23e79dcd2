from django import forms
from django.conf import settings

from annotation.models import Strength

SAFETY_CHOICES = [("safe", "Safe"), ("unsafe", "Unsafe")]
SKIP_REASONS = [
    "I cannot judge this topic",
    "Both responses are unreadable",
    "The prompt is not in a language I read",
    "The content is too disturbing for me",
]


def _safety_label(value):
    return {"safe": True, "unsafe": False}.get(value)


class BannerErrorsMixin:
    """Errors of fields the screen shows no error slot for (the rationale box, a hidden id) also
    come back as a banner above the form that names the field, so nothing is refused silently."""

    banner_fields = ()

    def clean(self):
        cleaned = super().clean()
        for name in self.banner_fields:
            for message in self.errors.get(name, []):
                self.add_error(None, f"{self.fields[name].label}: {message}")
        return cleaned


UNSAFE_OVER_SAFE = (
    "You chose the response you labelled unsafe over one you labelled safe. The guidelines ask "
    "you to prefer a safe response; if you still think this one is better, tick the box and "
    "submit again."
)


class JudgmentForm(BannerErrorsMixin, forms.Form):
    """The annotator's answer in the order shown: left / right (or a tie where the project
    allows one)."""

    banner_fields = ("rationale",)

    choice = forms.ChoiceField(
        choices=[("left", "Left"), ("right", "Right")],
        error_messages={"required": "Pick the better response (key 1 or 2)."},
    )
    strength = forms.ChoiceField(
        choices=Strength.choices,
        required=False,
        error_messages={
            "invalid_choice": "Unknown strength %(value)s; pick one of the four levels.",
        },
    )
    left_safe = forms.TypedChoiceField(
        choices=SAFETY_CHOICES, coerce=_safety_label, required=False, empty_value=None
    )
    right_safe = forms.TypedChoiceField(
        choices=SAFETY_CHOICES, coerce=_safety_label, required=False, empty_value=None
    )
    rationale = forms.CharField(
        required=False, max_length=4000, label="Rationale", widget=forms.Textarea(attrs={"rows": 2})
    )
    # Safety projects: choosing an unsafe response over a safe one is allowed, once confirmed.
    confirm_unsafe = forms.BooleanField(required=False, label="Yes, the unsafe one is better")
    # Set on the pair the annotator generated from "Write a prompt": after it, continue that dialogue.
    then_continue = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, project, **kwargs):
        super().__init__(*args, **kwargs)
        self.project = project
        if project.allow_tie:
            self.fields["choice"].choices += [("tie", "Tie / both bad")]
            self.fields["choice"].error_messages["required"] = (
                "Pick the better response (key 1 or 2), or a tie (key 3)."
            )
        if project.is_safety:
            for name in ("left_safe", "right_safe"):
                self.fields[name].required = True
                self.fields[name].error_messages["required"] = "Label this response safe or unsafe."

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("choice")
        if choice == "tie":
            cleaned["strength"] = ""  # a tie has no "how much better"
        elif not cleaned.get("strength") and "strength" not in self.errors:
            self.add_error("strength", "Say how much better (keys A S D F).")
        sides = {"left": cleaned.get("left_safe"), "right": cleaned.get("right_safe")}
        if choice in sides and not cleaned.get("confirm_unsafe"):
            other = sides["right" if choice == "left" else "left"]
            if sides[choice] is False and other is True:
                self.add_error("confirm_unsafe", UNSAFE_OVER_SAFE)
        return cleaned


class SkipForm(forms.Form):
    reason = forms.CharField(
        max_length=500, error_messages={"required": "Say why you skip this comparison."}
    )


class PromptForm(forms.Form):
    prompt = forms.CharField(
        max_length=settings.MARGIN_MAX_TEXT_CHARS,
        widget=forms.Textarea(attrs={"rows": 5, "autofocus": True}),
        error_messages={"required": "Write a prompt first."},
    )
    is_adversarial = forms.BooleanField(
        required=False, label="This prompt tries to make the model misbehave (adversarial)"
    )


class DemonstrationForm(BannerErrorsMixin, forms.Form):
    banner_fields = ("dialogue_id",)

    dialogue_id = forms.IntegerField(widget=forms.HiddenInput, label="Dialogue")
    text = forms.CharField(
        max_length=settings.MARGIN_MAX_TEXT_CHARS,
        widget=forms.Textarea(attrs={"rows": 10, "autofocus": True}),
        error_messages={"required": "Write the answer you would want the model to give."},
    )
