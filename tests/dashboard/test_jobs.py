"""Jobs pages: launch forms generated from the config dataclasses (errors name the field and
nothing is created), the polled progress fragment, cancel and retry."""

import re
from html import unescape

import pytest
from django.urls import reverse

from margin.models import Job
from rewardmodel.models import RewardModel

RM = reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL])


def _field_errors(html, name):
    block = re.search(rf'<label for="id_{name}">.*?</div>', html, re.S)
    assert block, f"no field {name}"
    return [unescape(e) for e in re.findall(r'<span class="error" role="alert">([^<]*)</span>', block.group(0))]


def test_reward_model_form_shows_every_config_field_with_its_help(staff_client, db):
    html = staff_client.get(RM).content.decode()
    for name in ("base_model", "learning_rate", "epochs", "margin_scheme", "max_pairs"):
        assert f'name="{name}"' in html
    assert "Peak AdamW learning rate (paper: 1e-5, 5e-6 for 70B)." in html
    assert 'name="learning_rate" value="1e-05"' in html


@pytest.mark.parametrize("data,field,message", [
    ({"name": "rm-1"}, "project", "Pick the project whose judgments train it."),
    ({"name": "bad name!"}, "name", "is not a usable name"),
    ({"name": "rm-1", "learning_rate": "-1"}, "learning_rate", "learning_rate must be > 0"),
    ({"name": "rm-1", "learning_rate": "fast"}, "learning_rate", "Enter a number."),
    ({"name": "rm-1", "heldout_fraction": "1.5"}, "heldout_fraction", "must be in [0, 1)"),
    ({"name": "rm-1", "margin_scheme": "huge"}, "margin_scheme", "must be none, small or large"),
])
def test_reward_model_launch_with_bad_input(staff_client, crafted, data, field, message):
    if field != "project":
        data = {"project": crafted["project"].pk, **data}
    response = staff_client.post(RM, data)
    assert response.status_code == 422
    errors = _field_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert not Job.objects.exists() and not RewardModel.objects.exists()


def test_reward_model_launch_refuses_a_project_without_judgments(staff_client, db):
    from tests.factories import ProjectFactory

    project = ProjectFactory(name="Empty")
    response = staff_client.post(RM, {"project": project.pk, "name": "rm-empty"})
    assert "has no judged comparisons yet" in _field_errors(response.content.decode(), "project")[0]
    assert not Job.objects.exists()


def test_reward_model_launch_sends_only_changed_fields(staff_client, crafted, staff, settings):
    settings.MARGIN_MODEL_STORE = "/models"  # a checkpoint path typed here must lie in the store
    response = staff_client.post(RM, {
        "project": crafted["project"].pk, "name": "rm-1", "learning_rate": "1e-05",
        "epochs": "2", "base_model": "/models/tiny",
    })
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:job", args=[job.pk])
    assert job.kind == Job.Kind.TRAIN_REWARD_MODEL and job.created_by == staff
    assert job.params == {"project_id": crafted["project"].pk, "name": "rm-1",
                          "config": {"epochs": 2.0, "base_model": "/models/tiny"}}


@pytest.mark.parametrize("kind,data,field,message", [
    (Job.Kind.REJECTION_SAMPLE, {"k": "0"}, "k", "k"),
    (Job.Kind.REJECTION_SAMPLE, {"policy": "nope"}, "policy", "no policy version named 'nope'"),
    (Job.Kind.REJECTION_SAMPLE, {"curve_temperatures": "hot"}, "curve_temperatures", "separated by commas"),
    (Job.Kind.PPO, {"kl_beta": "-0.1"}, "kl_beta", "kl_beta"),
    (Job.Kind.PUBLISH_SAMPLES, {}, "project", "name the project"),
    (Job.Kind.PUBLISH_SAMPLES, {"project": "Nowhere"}, "project", "no project named 'Nowhere'"),
])
def test_policy_job_launch_with_bad_input(staff_client, crafted, kind, data, field, message):
    response = staff_client.post(reverse("dashboard:job_launch", args=[kind]), data)
    assert response.status_code == 422
    errors = _field_errors(response.content.decode(), field)
    assert errors and message in errors[0], errors
    assert not Job.objects.exists()


def test_publish_samples_launch_creates_a_job(staff_client, crafted):
    response = staff_client.post(reverse("dashboard:job_launch", args=[Job.Kind.PUBLISH_SAMPLES]),
                                 {"project": "Crafted", "max_prompts": "4"})
    job = Job.objects.get(kind=Job.Kind.PUBLISH_SAMPLES)
    assert response.status_code == 302
    assert job.params["config"] == {"project": "Crafted", "max_prompts": 4}


def test_unknown_launch_kind_is_404(staff_client, db):
    assert staff_client.get(reverse("dashboard:job_launch", args=["delete_everything"])).status_code == 404


def test_progress_fragment_polls_until_the_job_finishes(staff_client, db):
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, state=Job.State.RUNNING,
                             progress_step=3, progress_total=4, log="step 3 loss 0.61\n",
                             metrics={"loss": 0.61, "accuracy": 0.7})
    url = reverse("dashboard:job", args=[job.pk])
    response = staff_client.get(url, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section id="job-progress"')
    assert 'hx-trigger="every 2s"' in html and 'aria-valuenow="75"' in html
    assert "step 3 loss 0.61" in html and "<!doctype" not in html
    Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED, progress_step=4)
    response = staff_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286  # htmx stops polling
    assert 'aria-valuenow="100"' in response.content.decode()
    assert "hx-trigger" not in response.content.decode()
    assert staff_client.get(url).content.decode().startswith("<!doctype html>")


def test_cancel_and_retry(staff_client, crafted):
    queued = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, params={"name": "rm-x"})
    staff_client.post(reverse("dashboard:job_cancel", args=[queued.pk]))
    queued.refresh_from_db()
    assert queued.state == Job.State.CANCELLED
    response = staff_client.post(reverse("dashboard:job_retry", args=[queued.pk]))
    retry = Job.objects.exclude(pk=queued.pk).get()
    assert response["Location"] == reverse("dashboard:job", args=[retry.pk])
    assert retry.state == Job.State.QUEUED and retry.params == {"name": "rm-x", "retry_of": queued.pk}
    response = staff_client.post(reverse("dashboard:job_retry", args=[retry.pk]))
    assert response.status_code == 422 and "only failed or cancelled jobs" in response.content.decode()
    assert Job.objects.count() == 2


def test_jobs_list_polls_while_a_job_runs(staff_client, db):
    job = Job.objects.create(kind=Job.Kind.PPO, state=Job.State.RUNNING, progress_step=1,
                             progress_total=4)
    url = reverse("dashboard:jobs") + "?kind=ppo"
    assert 'hx-get="/dashboard/jobs/?kind=ppo" hx-trigger="every 3s"' in staff_client.get(url).content.decode()
    response = staff_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and 'aria-valuenow="25"' in response.content.decode()
    Job.objects.filter(pk=job.pk).update(state=Job.State.SUCCEEDED)
    response = staff_client.get(url, HTTP_HX_REQUEST="true")
    assert response.status_code == 286 and "hx-trigger" not in response.content.decode()
    assert 'aria-valuenow="100"' in response.content.decode()
