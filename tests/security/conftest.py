"""One small world with a row behind every URL, and a script payload in every text field users
(annotators, staff, imported files, model outputs) can write."""

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.auth.models import Group
from django.test import Client
from django.utils.html import escape

from annotation import services
from annotation.models import (
    Adjudication,
    AnnotatorProfile,
    Assignment,
    Batch,
    Comparison,
    Demonstration,
    Dialogue,
    Judgment,
    Project,
    Response,
    Turn,
)
from margin.models import Job
from margin.roles import ROLES
from rewardmodel.models import RewardModel, RewardModelEvaluation
from rlhf.models import PolicyVersion, SafetyPrompt
from tests.factories import (
    BatchFactory,
    ComparisonFactory,
    JudgmentFactory,
    ProjectFactory,
    StaffFactory,
    UserFactory,
)

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE_BREAK = '"><img src=x onerror=alert(1)>'
RAW_PAYLOADS = (SCRIPT, ATTRIBUTE_BREAK, "<img src=x onerror=alert(1)>")


def evil(label):
    """A text that names its field, then tries to run a script and to break out of an attribute."""
    return f"{label}:{SCRIPT}{ATTRIBUTE_BREAK}"


def escaped(label):
    return escape(evil(label))


def payload_leaks(html):
    """The raw payloads found in a page (an empty list when every one was escaped)."""
    return [payload for payload in RAW_PAYLOADS if payload in html]


@pytest.fixture(autouse=True)
def _fast_settings(settings, tmp_path):
    """Each test its own model store; a fast password hash (logins are the slow part here)."""
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db, tmp_path):
    """owner: one judgment (with a note), one skip (with a reason), one open assignment, a pair
    being generated; intruder: another annotator with nothing; staff: a superuser; one staff user
per role of margin/roles.py, named after it, and no_role, staff with no role. One judgment
    per comparison, so nobody else is ever served the owner's open comparison. Every text a
    user can write carries the payload."""
    staff = StaffFactory(username=evil("staff"), is_superuser=True)
    role_users = {role: StaffFactory(username=role, roles=[role]) for role in ROLES}
    role_users["no_role"] = StaffFactory(username="no-role", roles=[])
    owner = UserFactory(username=evil("owner"), first_name=evil("first"), last_name=evil("last"))
    intruder = UserFactory(username="intruder")
    sleeper = UserFactory(username=evil("sleeper"))
    project = ProjectFactory(name=evil("project"), guidelines=evil("guidelines"),
                             judgments_per_comparison=1, gold_share=0)
    batch = BatchFactory(project=project, number=1)
    comparisons = [ComparisonFactory(batch=batch) for _ in range(4)]
    for n, comparison in enumerate(comparisons):
        Turn.objects.filter(dialogue=comparison.dialogue).update(content=evil("prompt"))
        comparison.response_a.text, comparison.response_b.text = evil("response-a"), evil("response-b")
        comparison.response_a.model_name = comparison.response_b.model_name = evil("model-name")
        comparison.response_a.save()
        comparison.response_b.save()
        comparison.dialogue.source = evil("dialogue-source")
        comparison.dialogue.save()
        comparison.source = evil("comparison-source")
        comparison.metadata = {"scenario": evil("metadata")}
        comparison.save()

    judged = services.assignment_next(annotator=owner, project=project)
    judgment = services.judgment_submit(
        annotator=owner, comparison_id=judged.comparison_id, chosen_side="left",
        strength="better", rationale=evil("rationale"),
    )
    skipped = services.assignment_next(annotator=owner, project=project)
    services.assignment_skip(annotator=owner, comparison_id=skipped.comparison_id,
                             reason=evil("skip-reason"))
    assignment = services.assignment_next(annotator=owner, project=project)
    assert assignment.status == Assignment.Status.OPEN

    JudgmentFactory(comparison=judgment.comparison, annotator=sleeper, choice="b",
                    rationale=evil("sleeper-rationale"))
    JudgmentFactory(comparison=judgment.comparison, annotator=None,
                    external_annotator=evil("external-rater"), choice="a")
    AnnotatorProfile.objects.create(user=sleeper, is_paused=True, paused_reason=evil("paused"))
    Adjudication.objects.create(comparison=judgment.comparison, choice="a", strength="better",
                                staff=staff, note=evil("adjudication-note"))
    Demonstration.objects.create(dialogue=comparisons[3].dialogue, context_length=1,
                                 annotator=owner, text=evil("demonstration"))

    pair_job = Job.objects.create(kind=Job.Kind.GENERATE_PAIR, created_by=owner,
                                  params={"dialogue_id": comparisons[3].dialogue_id})
    job = Job.objects.create(
        kind=Job.Kind.TRAIN_REWARD_MODEL, state=Job.State.FAILED, created_by=staff,
        params={"project_id": project.pk, "name": evil("job-param")},
        log=evil("job-log"), error=evil("job-error"),
    )
    import_job = Job.objects.create(kind=Job.Kind.IMPORT_DATA, state=Job.State.SUCCEEDED, created_by=staff,
                                    error=evil("import-error"), log=evil("import-log"))
    reward_model = RewardModel.objects.create(
        name=evil("rm"), objective="helpfulness", project=project, base_model=evil("base"),
        metrics={"heldout": {"accuracy": 0.6}},
    )
    RewardModelEvaluation.objects.create(reward_model=reward_model, batch=batch,
                                         label=evil("evaluation"), pairs=4, accuracy=0.5)
    policy = PolicyVersion.objects.create(name=evil("policy"), checkpoint_path=str(tmp_path / "none"),
                                          notes=evil("policy-notes"))
    SafetyPrompt.objects.create(text=evil("safety-prompt"), category=evil("risk-category"), source=evil("source"))
    Group.objects.create(name=evil("group"))
    axes_row = dict(user_agent=evil("agent"), ip_address="10.0.0.9", username=evil("attempt"),
                    http_accept="text/html", path_info="/accounts/login/")
    AccessAttempt.objects.create(**axes_row, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**axes_row)
    AccessFailureLog.objects.create(**axes_row)
    return {
        "staff": staff, "owner": owner, "intruder": intruder, "sleeper": sleeper,
        "project": project, "batch": batch, "comparisons": comparisons,
        "judgment": judgment, "skipped": skipped, "assignment": assignment,
        "pair_job": pair_job, "job": job, "import_job": import_job, "reward_model": reward_model,
        "policy": policy,
        **role_users,
    }


def client_for(user, **kwargs):
    client = Client(**kwargs)
    if user is not None:
        client.force_login(user)
    return client


def snapshot():
    """Everything a refused request must leave as it was."""
    models = (Project, Batch, Dialogue, Turn, Response, Comparison, Assignment, Judgment,
              Demonstration, AnnotatorProfile, Adjudication, Job, RewardModel, PolicyVersion)
    return {model.__name__: list(model.objects.order_by("pk").values()) for model in models}

