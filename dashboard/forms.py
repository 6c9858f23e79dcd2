"""Dashboard forms. Job launch forms are generated from the config dataclasses, so every field
shows its default and its one-line doc (`field.metadata["help"]`) and nothing is typed twice."""

from __future__ import annotations

import dataclasses
import typing

from django import forms
from django.conf import settings

from annotation.models import Project, Strength

PROJECT_FIELDS = [
    "name", "objective", "guidelines", "judgments_per_comparison", "margin_scheme",
    "lease_seconds", "gold_share", "attention_policy", "qualification_golds",
    "qualification_min_accuracy",
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


def _default(field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


class FloatListField(forms.CharField):
    """Comma-separated numbers, e.g. "0.6, 1.0, 1.4"."""

    def to_python(self, value):
        text = super().to_python(value)
        try:
            return [float(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise forms.ValidationError("Give numbers separated by commas, e.g. 0.6, 1.0.")

    def prepare_value(self, value):
        return ", ".join(str(v) for v in value) if isinstance(value, list) else value


def _form_field(field, hint):
    default = _default(field)
    options = {"required": False, "initial": default, "help_text": field.metadata.get("help", "")}
    if "choices" in field.metadata:
        return forms.ChoiceField(choices=[(c, c) for c in field.metadata["choices"]], **options)
    if hint is bool:
        return forms.BooleanField(**options)
    if hint is int:
        return forms.IntegerField(**options)
    if hint is float:
        return forms.FloatField(**options)
    if typing.get_origin(hint) is list:
        return FloatListField(**options)
    return forms.CharField(max_length=500, **options)


class ConfigForm(forms.Form):
    """Base of the generated forms; `config()` returns only the fields changed from their
    defaults, so presets and the service's own defaults still apply."""

    config_class = None
    lead_fields: list[str] = []

    def config(self):
        names = {f.name for f in dataclasses.fields(self.config_class)}
        values = {}
        for name in self.changed_data:
            # A field the request did not carry at all keeps its default (checkboxes excepted:
            # an unticked box is never sent).
            absent = name not in self.data and not isinstance(self.fields[name], forms.BooleanField)
            if name in names and not absent and self.cleaned_data.get(name) is not None:
                values[name] = self.cleaned_data[name]
        return values

    def add_service_errors(self, invalid):
        """A service's ValidationError({field: message}) lands on the field it names."""
        for field, messages in invalid.message_dict.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


def config_form_class(config_class, lead=None):
    """A Form class with one field per dataclass field; `lead` fields (name -> form field) come
    first (e.g. the reward model's project and name, which are not config values)."""
    hints = typing.get_type_hints(config_class)
    attrs = dict(lead or {})
    for field in dataclasses.fields(config_class):
        attrs[field.name] = _form_field(field, hints[field.name])
    attrs["config_class"] = config_class
    return type(f"{config_class.__name__}Form", (ConfigForm,), attrs)
