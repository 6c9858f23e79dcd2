"""Pairs for annotators: two responses to the dialogue so far, from two policy variants at two
temperatures (Llama 2 sec. 3.2.1), stored as a comparison; the `generate_pair` job."""

import random
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from annotation.models import Batch, Dialogue
from annotation.services import comparison_create
from margin.jobs import job_run
from margin.models import Job
from rlhf.models import PolicyVersion


def policy_version_default():
    """The base chat model (converted once into the model store) as a policy version."""
    from modelruntime.modelstore import DEFAULT_MODEL_NAME, default_model_dir

    path = default_model_dir(Path(settings.MARGIN_MODEL_STORE))
    version, _ = PolicyVersion.objects.get_or_create(
        name=DEFAULT_MODEL_NAME,
        defaults={"kind": PolicyVersion.Kind.BASE, "checkpoint_path": str(path)},
    )
    return version


def policy_versions_for_pair():
    """Two variants for a pair (Llama 2 sec. 3.2.1): the two newest active versions."""
    versions = list(PolicyVersion.objects.filter(is_active=True).order_by("-created_at")[:2])
    if not versions:
        versions = [policy_version_default()]
    if len(versions) == 1:
        versions = versions * 2
    random.shuffle(versions)
    return versions


def pair_temperatures():
    temperatures = list(settings.MARGIN_PAIR_TEMPERATURES)
    if len(temperatures) == 1:
        return temperatures * 2
    return random.sample(temperatures, 2)


def generate_pair(job, on_progress):
    """Generate two responses to the dialogue so far and store them as a comparison."""
    from rlhf.backends import backend_for
    from rlhf.generation import SamplingConfig

    params = job.params
    dialogue = Dialogue.objects.get(pk=params["dialogue_id"])
    context_length = params["context_length"]
    messages = dialogue.messages(upto=context_length)
    responses = []
    for step, (version, temperature) in enumerate(
        zip(policy_versions_for_pair(), pair_temperatures())
    ):
        backend = backend_for(version)
        on_progress(step, 2, log_line=f"sampling variant {step + 1} of 2 from {backend.describe()}")
        config = SamplingConfig(
            temperature=temperature,
            max_new_tokens=settings.MARGIN_MAX_NEW_TOKENS,
            seed=random.randrange(2**31),
        )
        # A server that is down or does not answer raises GenerationUnavailable here, before
        # anything is stored: never a comparison with one response. The dialogue (the prompt)
        # stays; the annotator's page says generation is unavailable.
        [[generation]] = backend.generate([messages], config)
        text = generation.text
        responses.append(
            {"text": text, "policy_version": version, "sampling": config.to_dict()}
        )
    annotator_id = params.get("annotator_id")
    annotator = get_user_model().objects.get(pk=annotator_id) if annotator_id else None
    with transaction.atomic():
        comparison = comparison_create(
            batch=Batch.objects.get(pk=params["batch_id"]),
            dialogue=dialogue,
            context_length=context_length,
            responses=responses,
            # Write-a-prompt pairs are judged once, by their author (Llama 2 sec. 3.2.1).
            reserved_for=annotator,
            judgments_wanted=1 if annotator else None,
        )
    on_progress(2, 2)
    return {"comparison_id": comparison.pk}


def generate_pair_run(*, job_id):
    return job_run(job_id=job_id, kind=Job.Kind.GENERATE_PAIR, work=generate_pair)
