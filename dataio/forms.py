from django import forms
from django.conf import settings

from annotation.models import MarginScheme, Objective, Project
from dataio.formats import PARSERS, mapping_parse
from dataio.records import MAX_NUMBER
from dataio.writers import OUTPUT_FORMATS


class ProjectsField(forms.ModelMultipleChoiceField):
    def _check_values(self, value):
        for pk in value:
            if str(pk).isdigit() and int(pk) > MAX_NUMBER:
                raise forms.ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                            params={"value": pk})
        return super()._check_values(value)


FORMAT_LABELS = {
    "margin": "Margin JSONL (prompts, pairs, judgments)",
    "hh": "Anthropic HH-RLHF (chosen / rejected transcripts)",
    "pku": "PKU-SafeRLHF (helpfulness or safety label, by the project)",
    "pandalm": "PandaLM (three annotators per pair)",
    "tulu": "Tulu 1 human evaluation (graded preference)",
    "autoj": "Auto-J pairwise (with ties)",
    "trl": "TRL / Hugging Face preference rows",
    "generic": "Generic JSON records (give the field mapping)",
    "labelstudio": "Label Studio pairwise export",
    "argilla": "Argilla ranking export",
}


class ImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    format = forms.ChoiceField(choices=[(name, FORMAT_LABELS.get(name, name)) for name in PARSERS])
    file = forms.FileField(help_text="JSON Lines (optionally gzip) or a JSON array.")
    batch = forms.IntegerField(required=False, min_value=1, max_value=MAX_NUMBER, help_text="Empty: the open batch.")
    mapping = forms.CharField(
        required=False, max_length=500,
        help_text="Field names, e.g. prompt=question,response_a=answer1,response_b=answer2,label=winner",
    )
    skip_invalid = forms.BooleanField(required=False, label="Import the valid records, report the rest")
    queue_judged = forms.BooleanField(required=False, label="Also serve judged pairs to our annotators")
    adversarial = forms.BooleanField(required=False, label="Adversarial (red-teaming) prompts")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        limit = settings.MARGIN_UPLOAD_MAX_BYTES
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size} bytes; uploads stop at {limit} bytes "
                "(MARGIN_UPLOAD_MAX_BYTES). Import larger files with `manage.py import_data`."
            )
        return upload

    def clean_mapping(self):
        try:
            return mapping_parse(self.cleaned_data["mapping"])
        except ValueError as bad:
            raise forms.ValidationError(str(bad)) from bad


class ExportForm(forms.Form):
    KINDS = [("trl", "TRL preference pairs"), ("margin", "Margin JSONL (everything)"), ("sft", "SFT demonstrations")]

    projects = ProjectsField(queryset=Project.objects.all())
    kind = forms.ChoiceField(choices=KINDS, initial="trl")
    output_format = forms.ChoiceField(
        choices=[(f, f) for f in OUTPUT_FORMATS if f != "datasets"], initial="jsonl", label="As"
    )
    batches = forms.CharField(required=False, help_text="Batch numbers, comma separated; empty: all.")
    objective = forms.ChoiceField(choices=[("", "any"), *Objective.choices], required=False)
    min_agreement = forms.FloatField(required=False, min_value=0, max_value=1, initial=0)
    exclude_annotators = forms.CharField(required=False, help_text="Usernames or rater ids, comma separated.")
    margin_scheme = forms.ChoiceField(choices=[("", "each project's own"), *MarginScheme.choices], required=False)

    def clean_batches(self):
        text = self.cleaned_data["batches"]
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts):
            raise forms.ValidationError(f"Give batch numbers separated by commas, not {text!r}.")
        if any(int(p) > MAX_NUMBER for p in parts):
            raise forms.ValidationError(f"Batch numbers stop at {MAX_NUMBER}.")
        return [int(p) for p in parts]

    def clean_exclude_annotators(self):
        return [p.strip() for p in self.cleaned_data["exclude_annotators"].split(",") if p.strip()]
