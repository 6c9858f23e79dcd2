"""Dashboard forms. Job launch forms are generated from the config dataclasses, so every field
shows its default and its one-line doc (`field.metadata["help"]`) and nothing is typed twice."""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing

from django import forms
from django.conf import settings
from django.core.validators import ProhibitNullCharactersValidator

from annotation.models import Project, Strength

PROJECT_FIELDS = [
    "name", "objective", "guidelines", "judgments_per_comparison", "margin_scheme",
    "lease_seconds", "gold_share", "attention_policy", "qualification_golds",
    "qualification_min_accuracy", "allow_tie",
]


class ProjectForm(forms.ModelForm):
    # The model's TextField has no limit; guidelines are shown on every task, so the same cap as
    # any other text annotators read.
    guidelines = forms.CharField(
        max_length=settings.MARGIN_MAX_TEXT_CHARS, widget=forms.Textarea(attrs={"rows": 8}),
        help_text=Project._meta.get_field("guidelines").help_text,
    )

    class Meta:
        model = Project
        fields = PROJECT_FIELDS

    def clean(self):
        cleaned = super().clean()
        for name in ("gold_share", "qualification_min_accuracy"):
            value = cleaned.get(name)
            if value is not None and not 0 <= value <= 1:
                self.add_error(name, "Give a share between 0 and 1.")
        return cleaned


class ProjectSettingsForm(ProjectForm):
    class Meta(ProjectForm.Meta):
        fields = [name for name in PROJECT_FIELDS if name not in ("name", "objective")]


class AnnotatorForm(forms.Form):
    ACTIONS = {
        "pause": {"is_paused": True},
        "resume": {"is_paused": False},
        "exclude": {"exclude_from_training": True},
        "include": {"exclude_from_training": False},
    }
    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    reason = forms.CharField(required=False, max_length=300)


class SafetyGateForm(forms.Form):
    """A safety RM's PPO gate: a score, or reset to the paper's 0.15. The form only reads a number;
    the bounds live in one place, dashboard.services.reward_model_gate_set."""
    gate = forms.CharField(required=False, max_length=40)
    reset = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        if data.get("reset"):
            data["gate"] = None
            return data
        raw = (data.get("gate") or "").strip()
        try:
            data["gate"] = float(raw)
        except ValueError:
            self.add_error("gate", f"{raw!r} is not a number" if raw else "enter a score between 0 and 1, or reset")
        return data


class AdjudicationForm(forms.Form):
    choice = forms.ChoiceField(
        choices=[("a", "Response A"), ("b", "Response B")], widget=forms.RadioSelect,
        error_messages={"required": "Pick response A or B."},
    )
    strength = forms.ChoiceField(
        choices=Strength.choices, error_messages={"required": "Pick a strength level."}
    )
    note = forms.CharField(required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
    make_gold = forms.BooleanField(
        required=False, label="Also use it as a gold comparison (mixed into queues)"
    )
    make_attention_check = forms.BooleanField(
        required=False, label="…and as an attention check (the answer is obvious; a miss triggers "
        "the project's attention policy)",
    )


# --- job launch forms from config dataclasses ----------------------------------------------------
# The form checks every field's type and bounds itself, so one submit reports every bad field,
# each under its field in words of its label; the config's cross-field rules and the services'
# checks (names that exist, data to train on) follow once the fields are fine.

# Words a generated label spells as people write them ("kl_beta" -> "KL beta").
LABEL_WORDS = {"kl": "KL", "lora": "LoRA", "rm": "RM", "ppo": "PPO", "gae": "GAE", "k": "K",
               "nan": "NaN", "lr": "LR", "sft": "SFT", "top_p": "Top-p"}
BOUND_WORDS = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
BOUND_CHECKS = {"gt": lambda v, b: v > b, "ge": lambda v, b: v >= b,
                "lt": lambda v, b: v < b, "le": lambda v, b: v <= b}


def field_label(name):
    if name in LABEL_WORDS:
        return LABEL_WORDS[name]
    words = [LABEL_WORDS.get(word, word) for word in name.split("_")]
    first = words[0]
    return " ".join([first[:1].upper() + first[1:], *words[1:]])


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _bounds_validator(label, meta):
    bounds = {key: meta[key] for key in BOUND_CHECKS if key in meta}
    lower = next((key for key in ("gt", "ge") if key in bounds), None)
    upper = next((key for key in ("lt", "le") if key in bounds), None)
    if lower and upper:  # "Heldout fraction must be in [0, 1) (got 1.5)."
        rule = (f"in {'[' if lower == 'ge' else '('}{bounds[lower]:g}, "
                f"{bounds[upper]:g}{']' if upper == 'le' else ')'}")
    else:
        rule = " ".join(f"{BOUND_WORDS[key]} {bound:g}" for key, bound in bounds.items())

    def check(value):
        for item in value if isinstance(value, list) else [value]:
            if not all(BOUND_CHECKS[key](item, bound) for key, bound in bounds.items()):
                raise forms.ValidationError(f"{label} must be {rule} (got {item:g}).")

    return check


def _bounds_attrs(meta, hint):
    """min / max attributes for a number input: exact for ge / le, and for gt / lt on whole
    numbers; a float's strict bound shows as its limit (the server refuses the limit itself)."""
    attrs = {}
    for key, attr, step in (("ge", "min", 0), ("gt", "min", 1), ("le", "max", 0), ("lt", "max", -1)):
        if key in meta:
            attrs[attr] = meta[key] + step if hint is int else meta[key]
    return attrs


class FloatListField(forms.CharField):
    """Comma-separated numbers, e.g. "0.6, 1.0, 1.4"."""

    def to_python(self, value):
        text = super().to_python(value)
        try:
            numbers = [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Give numbers separated by commas, e.g. 0.6, 1.0.")
        for number in numbers:
            if not math.isfinite(number):
                raise forms.ValidationError(f"{self.label} must be a finite number, got {number}.")
        return numbers

    def prepare_value(self, value):
        return ", ".join(str(v) for v in value) if isinstance(value, list) else value


class NameChoiceField(forms.ChoiceField):
    """A registered name picked from a list (policy versions, reward models, projects); empty
    keeps the config's default, which its help text states."""

    def __init__(self, *, names, what, **options):
        super().__init__(choices=lambda: [("", "(default)"), *(n if isinstance(n, tuple) else (n, n) for n in names())],
                         **options)
        self.error_messages["invalid_choice"] = f"no {what} named '%(value)s'; pick one from the list."

    def to_python(self, value):
        value = super().to_python(value)
        ProhibitNullCharactersValidator()(value)
        return value


def _policy_names():
    from rlhf.models import PolicyVersion

    return PolicyVersion.objects.order_by("-created_at").values_list("name", flat=True)


def _reward_model_names():
    from rewardmodel.models import RewardModel

    return RewardModel.objects.order_by("-created_at").values_list("name", flat=True)


def _checkpoint_choices():
    """(checkpoint path, version name) of the policy versions whose weights are in the store: a
    reward model starts from one of them (Llama 2 sec. 3.2.2: from the chat model checkpoint)."""
    from rlhf.selectors import policy_versions_with_weights

    return [(version.checkpoint_path, version.name) for version in policy_versions_with_weights()]


def _project_names():
    return Project.objects.order_by("name").values_list("name", flat=True)


# Config fields that hold a registered name: the form offers the names that exist.
NAME_FIELDS = {
    "policy": (_policy_names, "policy version"), "against": (_policy_names, "policy version"),
    "policy_a": (_policy_names, "policy version"), "policy_b": (_policy_names, "policy version"),
    "helpfulness_rm": (_reward_model_names, "reward model"),
    "safety_rm": (_reward_model_names, "reward model"),
    "project": (_project_names, "project"),
    "base_model": (_checkpoint_choices, "policy checkpoint"),
}


@functools.cache
def cuda_present():
    """Whether this machine has a CUDA device; the web process imports torch only here, once."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _form_field(field, hint, config_class):
    label = field_label(field.name)
    default = _default(field)
    meta = field.metadata
    options = {"required": False, "initial": default, "label": label, "help_text": meta.get("help", "")}
    if field.name == "preset" and getattr(config_class, "CPU_PRESET", None):
        # The paper's batch of 512 rollouts would take days on a CPU.
        options["initial"] = "paper" if cuda_present() else "cpu"
        replaced = ", ".join(f"{field_label(k)} {v}" for k, v in config_class.CPU_PRESET.items())
        options["help_text"] += f" The CPU preset sets: {replaced} (fields you change win)."
    if field.name in NAME_FIELDS and hint is str:
        names, what = NAME_FIELDS[field.name]
        return NameChoiceField(names=names, what=what, **options)
    if "choices" in meta:
        return forms.ChoiceField(choices=[(c, c) for c in meta["choices"]], **options)
    if hint is bool:
        return forms.BooleanField(**options)
    validators = [_bounds_validator(label, meta)]
    if hint is int:
        return forms.IntegerField(validators=validators, widget=forms.NumberInput(_bounds_attrs(meta, int)),
                                  **options)
    if hint is float:
        widget = forms.NumberInput({"step": "any", **_bounds_attrs(meta, float)})
        return forms.FloatField(validators=validators, widget=widget, **options)
    if typing.get_origin(hint) is list:
        return FloatListField(validators=validators, **options)
    return forms.CharField(max_length=500, **options)


class ConfigForm(forms.Form):
    """Base of the generated forms; `config()` returns only the values that differ from the
    config's defaults, so presets and the service's own defaults still apply."""

    config_class = None

    def config(self):
        values = {}
        for field in dataclasses.fields(self.config_class):
            name = field.name
            # A field the request did not carry at all keeps its default (checkboxes excepted:
            # an unticked box is never sent).
            absent = name not in self.data and not isinstance(self.fields[name], forms.BooleanField)
            value = self.cleaned_data.get(name)
            if not absent and value is not None and value != _default(field):
                values[name] = value
        return values

    def clean(self):
        cleaned = super().clean()
        if not self.errors:  # cross-field rules (e.g. minibatch within batch), once each field is fine
            try:
                self.config_class.from_dict(self.config())
            except ValueError as bad:  # modelruntime's ConfigError names its field
                field = getattr(bad, "field", None)
                self.add_error(field if field in self.fields else None, self.labelled(str(bad)))
        return cleaned

    def labelled(self, message):
        """A config or service message in the form's words: field names become their labels."""
        # Only names with an underscore: "learning_rate" reads as code, "name" or "k" as words.
        for name in sorted((n for n in self.fields if "_" in n), key=len, reverse=True):
            label = self.fields[name].label or field_label(name)
            message = re.sub(rf"\b{re.escape(name)}\b", str(label), message)
        return message

    def add_service_errors(self, invalid):
        """A service's ValidationError({field: message}) lands on the field it names."""
        for field, messages in invalid.message_dict.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, self.labelled(message))


def config_form_class(config_class, lead=None):
    """A Form class with one field per dataclass field; `lead` fields (name -> form field) come
    first (e.g. the reward model's project and name, which are not config values)."""
    hints = typing.get_type_hints(config_class)
    attrs = dict(lead or {})
    for field in dataclasses.fields(config_class):
        attrs[field.name] = _form_field(field, hints[field.name], config_class)
    attrs["config_class"] = config_class
    return type(f"{config_class.__name__}Form", (ConfigForm,), attrs)
