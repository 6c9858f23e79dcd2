"""Jobs pages: launch forms generated from the config dataclasses (errors name the field and
nothing is created), the polled progress fragment, cancel and retry."""

import re
import time
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
    ({"name": "rm-1", "learning_rate": "-1"}, "learning_rate", "Learning rate must be greater than 0 (got -1)."),
    ({"name": "rm-1", "learning_rate": "fast"}, "learning_rate", "Enter a number."),
    ({"name": "rm-1", "heldout_fraction": "1.5"}, "heldout_fraction", "must be in [0, 1)"),
    ({"name": "rm-1", "margin_scheme": "huge"}, "margin_scheme", "must be none, small or large"),
    ({"name": "rm-1", "truncation_side": "middle"}, "truncation_side", "middle is not one of the available choices"),
    ({"name": "rm-1", "method": "probe", "lora_rank": "8"}, "lora_rank",
     "LoRA rank is 8, but the probe (method probe) trains no weights of the model"),
    ({"name": "rm-1", "method": "probe", "probe_layers": "8;16"}, "probe_layers",
     "Probe layers must be layer numbers separated by commas"),
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


def test_reward_model_launch_sends_only_changed_fields(staff_client, crafted, staff, settings, tiny_model_path):
    from rlhf.models import PolicyVersion

    settings.MARGIN_MODEL_STORE = str(tiny_model_path.parent)  # a checkpoint must lie in the store
    PolicyVersion.objects.create(name="tiny-sft", checkpoint_path=str(tiny_model_path))
    response = staff_client.post(RM, {
        "project": crafted["project"].pk, "name": "rm-1", "learning_rate": "1e-05",
        "epochs": "2", "base_model": str(tiny_model_path), "truncation_side": "right",
    })
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:job", args=[job.pk])
    assert job.kind == Job.Kind.TRAIN_REWARD_MODEL and job.created_by == staff
    assert job.params == {"project_id": crafted["project"].pk, "name": "rm-1",
                          "config": {"epochs": 2.0, "base_model": str(tiny_model_path), "truncation_side": "right"}}


def test_reward_model_base_is_picked_from_versions_with_weights(staff_client, crafted, tiny_model_path):
    from rlhf.models import PolicyVersion

    PolicyVersion.objects.create(name="tiny-sft", checkpoint_path=str(tiny_model_path))
    PolicyVersion.objects.create(name="served-only", backend="openai", openai_base_url="http://gpu-1:8000/v1",
                                 served_model="m")
    html = staff_client.get(RM).content.decode()
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>',
                         re.search(r'<select name="base_model".*?</select>', html, re.S).group(0))
    assert options == [("", "(default)"), (str(tiny_model_path), "tiny-sft")]  # no weights, not offered
    response = staff_client.post(RM, {"project": crafted["project"].pk, "name": "rm-1", "base_model": "/etc"})
    assert response.status_code == 422
    assert _field_errors(response.content.decode(), "base_model") == [
        "no policy checkpoint named '/etc'; pick one from the list."]
    assert not Job.objects.exists()


@pytest.mark.parametrize("kind,data,field,message", [
    (Job.Kind.REJECTION_SAMPLE, {"k": "0"}, "k", "K must be greater than 0 (got 0)."),
    (Job.Kind.REJECTION_SAMPLE, {"policy": "nope"}, "policy", "no policy version named 'nope'"),
    (Job.Kind.REJECTION_SAMPLE, {"curve_temperatures": "hot"}, "curve_temperatures", "separated by commas"),
    (Job.Kind.PPO, {"kl_beta": "-0.1"}, "kl_beta", "KL beta must be at least 0 (got -0.1)."),
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


def test_launch_form_reports_every_bad_field_at_once_in_words_of_its_label(staff_client, crafted):
    response = staff_client.post(RM, {
        "project": crafted["project"].pk, "name": "rm-1", "learning_rate": "-1", "epochs": "0",
        "heldout_fraction": "1.5", "batch_size": "eight", "max_length": "8",
    })
    assert response.status_code == 422
    html = response.content.decode()
    assert _field_errors(html, "learning_rate") == ["Learning rate must be greater than 0 (got -1)."]
    assert _field_errors(html, "epochs") == ["Epochs must be greater than 0 (got 0)."]
    assert _field_errors(html, "heldout_fraction") == ["Heldout fraction must be in [0, 1) (got 1.5)."]
    assert _field_errors(html, "batch_size") == ["Enter a whole number."]
    assert _field_errors(html, "max_length") == ["Max length must be at least 16 (got 8)."]
    assert "learning_rate must" not in html
    assert not Job.objects.exists()


def test_number_inputs_carry_their_bounds_and_the_server_reports_them(staff_client, db):
    html = staff_client.get(reverse("dashboard:job_launch", args=[Job.Kind.PPO])).content.decode()
    assert re.search(r'<input type="number" name="gamma" value="1.0" step="any" min="0(\.0)?" max="1(\.0)?"', html)
    assert re.search(r'<input type="number" name="batch_size" value="512" min="2"', html)
    assert re.search(r'<input type="number" name="iterations" value="200" min="1"', html)  # gt=0 on a whole number
    # The browser leaves checking to the server, which reports every field at once.
    assert 'id="launch-form" novalidate' in html
    assert '<label for="id_kl_beta">KL beta:</label>' in html


def test_cross_field_rules_name_the_fields_by_their_labels(staff_client, crafted):
    response = staff_client.post(reverse("dashboard:job_launch", args=[Job.Kind.PPO]),
                                 {"batch_size": "64", "minibatch_size": "128"})
    assert response.status_code == 422
    assert _field_errors(response.content.decode(), "minibatch_size") == [
        "Minibatch size (128) must be <= Batch size (64)"]


def test_rl_forms_pick_policies_reward_models_and_projects_from_lists(staff_client, crafted):
    from rlhf.models import PolicyVersion

    PolicyVersion.objects.create(name="SFT-base", checkpoint_path="/models/sft")
    RewardModel.objects.create(name="rm-helpful", objective="helpfulness", base_model="/models/sft")
    html = staff_client.get(reverse("dashboard:job_launch", args=[Job.Kind.PPO])).content.decode()
    for name, option in (("policy", "SFT-base"), ("helpfulness_rm", "rm-helpful"),
                         ("safety_rm", "rm-helpful"), ("project", "Crafted")):
        select = re.search(rf'<select name="{name}".*?</select>', html, re.S)
        assert select, name
        assert f'<option value="{option}">{option}</option>' in select.group(0)
        assert '<option value="" selected>(default)</option>' in select.group(0)
    response = staff_client.post(reverse("dashboard:job_launch", args=[Job.Kind.PPO]),
                                 {"policy": "SFT-base", "helpfulness_rm": "rm-gone", "preset": "cpu"})
    assert _field_errors(response.content.decode(), "helpfulness_rm") == [
        "no reward model named 'rm-gone'; pick one from the list."]


@pytest.mark.parametrize("cuda,preset", [(False, "cpu"), (True, "paper")])
def test_rl_forms_default_to_the_cpu_preset_without_cuda(staff_client, monkeypatch, cuda, preset):
    from dashboard import forms

    monkeypatch.setattr(forms, "cuda_present", lambda: cuda)
    for kind in (Job.Kind.PPO, Job.Kind.REJECTION_SAMPLE):
        html = staff_client.get(reverse("dashboard:job_launch", args=[kind])).content.decode()
        assert f'<option value="{preset}" selected>{preset}</option>' in html
        assert "The CPU preset sets: Iterations 4" in html or kind != Job.Kind.PPO


def test_the_cpu_preset_left_as_shown_reaches_the_job(monkeypatch):
    from dashboard import forms, views

    monkeypatch.setattr(forms, "cuda_present", lambda: False)
    _, form_class = views._launch_form_class(Job.Kind.PPO)
    shown = form_class()
    # What the browser sends back when nothing was changed: every field as rendered.
    data = {name: shown[name].value() for name in shown.fields if name != "whiten_rewards"}
    form = form_class({**{k: "" if v is None else v for k, v in data.items()}, "whiten_rewards": "on"})
    assert form.is_valid(), form.errors
    assert form.config() == {"preset": "cpu"}  # the paper's values shown beside it stay unsent


def test_job_page_shows_parameters_as_a_table_and_its_queue(staff_client, db):
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, params={
        "project_id": 3, "name": "rm-<b>", "config": {"epochs": 2.0, "curve": [0.7, 1.0]}})
    html = staff_client.get(reverse("dashboard:job", args=[job.pk])).content.decode()
    table = re.search(r'<table class="table" id="job-params">.*?</table>', html, re.S).group(0)
    rows = re.findall(r'<th scope="row">([^<]*)</th><td>([^<]*)</td>', table)
    assert rows == [("project_id", "3"), ("name", "rm-&lt;b&gt;"), ("config.epochs", "2.0"),
                    ("config.curve", "0.7, 1.0")]
    assert "{'" not in html and "Runs on the <strong>gpu</strong> queue." in html
    # A queued job loads the workers' health after the page.
    assert f'hx-get="{reverse("dashboard:workers")}" hx-trigger="load"' in html


@pytest.mark.slow
def test_workers_show_per_queue_with_a_warning_where_none_listens(staff_client, start_worker):
    url = reverse("dashboard:workers")
    html = staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith('<section id="workers"') and "<!doctype" not in html
    assert html.count('data-testid="no-worker"') == 3  # default, gpu, generate: nobody listens
    assert "No live worker on the gpu queue" in html
    start_worker(name="gpu-only", queues="gpu")
    deadline = time.monotonic() + 60
    while 'data-queue="gpu">\n        <td>gpu</td>\n        <td>gpu-only@' not in html:
        assert time.monotonic() < deadline, html
        time.sleep(1)
        html = staff_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert "No live worker on the default queue" in html and "No live worker on the generate queue" in html
    assert "No live worker on the gpu queue" not in html
    assert 'hx-trigger="every 15s"' in html


def test_workers_say_so_when_the_broker_cannot_be_reached(staff_client, monkeypatch):
    from margin.celery import app

    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
    monkeypatch.setattr(app, "_pool", None)  # connections come from a pool made for the old URL
    html = staff_client.get(reverse("dashboard:workers"), HTTP_HX_REQUEST="true").content.decode()
    assert "No worker could be asked: the broker did not answer" in html
    assert html.count('data-testid="no-worker"') == 3


def test_service_checks_report_every_problem_in_one_submit(staff_client, crafted):
    # Names the form accepts, but the service refuses: a served policy without weights to fine-tune,
    # a project without prompts, and no reward model. All three under their fields at once, not
    # one per try (issue 16).
    from rlhf.models import PolicyVersion
    from tests.factories import ProjectFactory

    PolicyVersion.objects.create(name="served-only", backend="openai", openai_base_url="http://gpu-1:8000/v1",
                                 served_model="m")
    ProjectFactory(name="Empty")
    response = staff_client.post(reverse("dashboard:job_launch", args=[Job.Kind.PPO]),
                                 {"policy": "served-only", "project": "Empty", "preset": "cpu"})
    assert response.status_code == 422
    html = response.content.decode()
    assert "'served-only' has no complete checkpoint" in _field_errors(html, "policy")[0]
    assert "project 'Empty' has no training prompts" in _field_errors(html, "project")[0]
    assert "give a helpfulness or a safety reward model" in _field_errors(html, "helpfulness_rm")[0]
    assert not Job.objects.exists()


def test_reward_model_launch_reports_a_taken_name_and_an_unjudged_project_together(staff_client, db):
    from rewardmodel.models import RewardModel
    from tests.factories import ProjectFactory

    RewardModel.objects.create(name="rm-1", objective="helpfulness")
    project = ProjectFactory(name="Unjudged")
    response = staff_client.post(RM, {"project": project.pk, "name": "rm-1"})
    assert response.status_code == 422
    html = response.content.decode()
    assert _field_errors(html, "name") == ["a reward model named 'rm-1' already exists"]
    assert _field_errors(html, "project") == ["project 'Unjudged' has no judged comparisons yet"]
    assert not Job.objects.exists()
