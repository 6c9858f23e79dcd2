"""Comparisons: two responses to a dialogue's context, from generation, sampling or an import."""

from django.db import transaction

from annotation.models import Comparison, Response


def comparison_create(
    *,
    batch,
    dialogue,
    context_length,
    responses,
    reserved_for=None,
    judgments_wanted=None,
    source="",
    metadata=None,
):
    """Store two responses to a dialogue's context as a comparison in `batch`.

    `responses` is two dicts of Response fields (text, policy_version, model_name, sampling).
    `source` and `metadata` say where an imported pair came from (file and line, scenario...).
    """
    if len(responses) != 2:
        raise ValueError("A comparison needs exactly two responses.")
    with transaction.atomic():
        a, b = (
            Response.objects.create(dialogue=dialogue, context_length=context_length, **fields)
            for fields in responses
        )
        comparison = Comparison.objects.create(
            batch=batch,
            dialogue=dialogue,
            context_length=context_length,
            response_a=a,
            response_b=b,
            reserved_for=reserved_for,
            judgments_wanted=judgments_wanted,
            source=source[:200],
            metadata=metadata or {},
        )
    return comparison
