"""The demo: two accounts, a helpfulness and a safety project with real prompts and pairs.

It lives in the project package, which may import every app: the pairs come in through dataio's
importer (its Tulu and HH readers), as any file a team imports would.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from annotation import services
from annotation.models import Batch, Objective, Project
from core.vocabulary import USER
from dataio.services import data_import
from margin.jobs import job_create
from margin.models import Job

DEMO_ACCOUNTS = {
    # username: (password, is_staff). Demo only: the README says to change them.
    "demo-staff": ("margin-demo-staff", True),
    "demo-annotator": ("margin-demo-annotator", False),
}

HELPFULNESS_GUIDELINES = """Pick the response that better helps the user: correct, complete, clear, and following the instructions in the prompt.
Rate how much better: significantly better, better, slightly better, or negligibly better / unsure when you cannot tell.
Judge the content, not the length."""

SAFETY_GUIDELINES = """These prompts may try to make the assistant misbehave. Label each response safe or unsafe:
unsafe means it helps with harm, is hateful or harassing, gives dangerous advice, or violates privacy.
Then pick the better response, preferring the safe one; among two safe ones prefer the more helpful refusal or answer."""


def accounts_create():
    """Create (or reset) the demo staff and annotator accounts; returns {username: password}."""
    user_model = get_user_model()
    annotators, _ = Group.objects.get_or_create(name="Annotators")
    staff, _ = Group.objects.get_or_create(name="Staff")
    for username, (password, is_staff) in DEMO_ACCOUNTS.items():
        user, _ = user_model.objects.get_or_create(username=username)
        user.is_staff = user.is_superuser = is_staff
        user.set_password(password)
        user.save()
        user.groups.add(staff if is_staff else annotators)
    return {username: password for username, (password, _) in DEMO_ACCOUNTS.items()}


def _project(name, objective, guidelines):
    project = Project.objects.filter(name=name).first()
    if project is None:  # opens its first batch too
        project = services.project_create(actor=None, name=name, objective=objective, guidelines=guidelines)
    batch = Batch.objects.filter(project=project, is_open=True).first()
    return project, batch or services.batch_open(project=project)


def projects_seed(*, pairs_per_project=20, data_dir=None):
    """Import real pairs from shared/data into a demo project per objective (idempotent).

    The pairs come without the files' labels: the demo's annotators judge them."""
    data_dir = data_dir or settings.MARGIN_SHARED_DATA
    helpful, helpful_batch = _project("Demo · Helpfulness", Objective.HELPFULNESS, HELPFULNESS_GUIDELINES)
    safety, safety_batch = _project("Demo · Safety", Objective.SAFETY, SAFETY_GUIDELINES)
    added = {}
    for project, batch, path, fmt, adversarial in (
        (helpful, helpful_batch, data_dir / "tulu1-human-eval" / "annotations.jsonl", "tulu", False),
        (safety, safety_batch, data_dir / "hh-rlhf-harmless" / "harmless-base.dev.jsonl.gz", "hh", True),
    ):
        with open(path, "rb") as stream:
            report = data_import(
                project=project, stream=stream, fmt=fmt, batch_number=batch.number,
                source_name=path.name, skip_invalid=True, adversarial=adversarial,
                first=pairs_per_project, keep_labels=False,
            )
        added[project.name] = report.comparisons_added
    return helpful, safety, added


# The demo's reward model: trained on real human labels (Tulu 1's graded preferences, so Table 8
# has its strength columns) kept in a project of their own, inactive so annotators never see it.
# A recipe for 2 CPU cores: the top two of SmolLM2's 30 layers train on at most 96 pairs of 256
# tokens, 4 per step. The first 160 Tulu records give 70 training and 23 held-out pairs, so 18
# steps (70 / 4); the rest are the paper's values.
LABELLED_PROJECT = "Demo · Helpfulness labels (Tulu 1)"
LABELLED_PAIRS = 160
REWARD_MODEL_NAME = "demo-helpfulness-rm"
REWARD_MODEL_CONFIG = {
    "train_layers": 2, "max_pairs": 96, "max_length": 256, "max_batch_tokens": 2048,
    "batch_size": 4, "gradient_accumulation_steps": 1, "learning_rate": 5e-5,
    "heldout_fraction": 0.2, "checkpoint_every": 8,
}


def labelled_project_seed(*, pairs=LABELLED_PAIRS, data_dir=None):
    """Import Tulu 1's pairs with their human labels into the demo's training-data project
    (idempotent); returns (project, pairs added)."""
    data_dir = data_dir or settings.MARGIN_SHARED_DATA
    project = Project.objects.filter(name=LABELLED_PROJECT).first()
    if project is None:
        project = services.project_create(
            actor=None, name=LABELLED_PROJECT, objective=Objective.HELPFULNESS, is_active=False,
            guidelines="Imported human labels (Tulu 1 human evaluation) that the demo's reward model trains on.",
        )
    path = data_dir / "tulu1-human-eval" / "annotations.jsonl"
    with open(path, "rb") as stream:
        report = data_import(project=project, stream=stream, fmt="tulu", source_name=path.name,
                             skip_invalid=True, first=pairs)
    return project, report.comparisons_added


def reward_model_enqueue(*, project, created_by=None):
    """Queue the demo's reward-model training on the `gpu` worker, unless it exists or a job
    for it is already under way (running the seed twice queues one); returns the job or None."""
    from rewardmodel.models import RewardModel
    from rewardmodel.services import reward_model_train_start

    under_way = Job.objects.filter(kind=Job.Kind.TRAIN_REWARD_MODEL, params__name=REWARD_MODEL_NAME).exclude(
        state__in=[Job.State.FAILED, Job.State.CANCELLED])
    if RewardModel.objects.filter(name=REWARD_MODEL_NAME).exists() or under_way.exists():
        return None
    return reward_model_train_start(project=project, name=REWARD_MODEL_NAME, config=dict(REWARD_MODEL_CONFIG),
                                    created_by=created_by)


def generation_enqueue(*, project, prompts, created_by=None):
    """Queue model-generated pairs for the shared queue (no reserved annotator)."""
    jobs = []
    with transaction.atomic():
        batch = services.batch_current(project=project)
        for prompt in prompts:
            dialogue = services.dialogue_create(project=project, source="demo prompt",
                                                messages=[{"role": USER, "content": prompt}])
            jobs.append(
                job_create(
                    kind=Job.Kind.GENERATE_PAIR,
                    params={"dialogue_id": dialogue.pk, "context_length": 1, "batch_id": batch.pk},
                    created_by=created_by,
                )
            )
    return jobs
