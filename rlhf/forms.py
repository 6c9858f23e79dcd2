"""The dashboard's form for a policy version's generation backend (the admin edits the same fields)."""

from django import forms

from rlhf.models import PolicyVersion
from rlhf.policies import BACKEND_FIELDS


class PolicyBackendForm(forms.ModelForm):
    class Meta:
        model = PolicyVersion
        fields = list(BACKEND_FIELDS)
