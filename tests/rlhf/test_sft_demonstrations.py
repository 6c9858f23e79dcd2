"""SFT from demonstrations: a real Celery worker fine-tunes the tiny policy on the annotators'
demonstrations into a new SFT version with its lineage; an imported SFT file and LoRA work in
process; bad input is refused naming the field (service) or with a clear message (command)."""

import json

import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.models import Demonstration
from margin.models import Job
from modelruntime.modelstore import load_policy
from rlhf import finetune_work, jobs
from rlhf.models import PolicyVersion
from tests.factories import DialogueFactory, ProjectFactory, StaffFactory, UserFactory
from tests.real_services import wait_until

SMALL = {"policy": "tiny", "project": "helpful", "preset": "cpu", "heldout_fraction": 0.0, "batch_size": 2,
         "micro_batch_size": 2, "max_length": 128, "learning_rate": 1e-3}


@pytest.fixture
def demonstrations(tiny_policy):
    project, annotator = ProjectFactory(name="helpful"), UserFactory()
    for n in range(4):
        dialogue = DialogueFactory(project=project)
        Demonstration.objects.create(dialogue=dialogue, context_length=1, annotator=annotator,
                                     text=f"A careful, kind answer number {n}.")
    return tiny_policy


@pytest.mark.slow
def test_a_worker_fine_tunes_on_demonstrations_into_a_new_sft_version(start_worker, demonstrations):
    start_worker()
    job = jobs.sft_start(config=SMALL)

    wait_until(lambda: job.refresh_from_db() or job.is_finished, 180, "the SFT job")
    assert job.state == Job.State.SUCCEEDED, job.error
    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert version.name == "SFT-V1" and version.kind == PolicyVersion.Kind.SFT
    assert version.parent == demonstrations and version.job == job
    assert version.data["examples"] == {"demonstrations": 4}
    assert version.config["preset"] == "cpu" and len(version.metrics["loss/sft"]) == 2  # 4 examples / 2 per step
    assert job.percent == 100 and job.attempts == 1


@pytest.mark.django_db
def test_sft_with_lora_adds_an_imported_file_and_changes_the_weights(demonstrations, tmp_path, settings):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    rows = tmp_path / "sft.jsonl"
    rows.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi?"},
                                             {"role": "assistant", "content": "Hello!"}]}) + "\n")
    job = jobs.sft_start(config={**SMALL, "sft_file": str(rows), "lora_rank": 4, "learning_rate": 1e-2})
    finetune_work.sft_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.state == Job.State.SUCCEEDED, job.error
    version = PolicyVersion.objects.get(name=job.result["name"])
    assert version.data["examples"] == {"demonstrations": 4, "sft_file": 1}
    tuned, _ = load_policy(version.checkpoint_path, "cpu")
    base, _ = load_policy(demonstrations.checkpoint_path, "cpu")
    names = list(tuned.state_dict())
    assert not any("lora" in name for name in names)  # merged into a plain checkpoint
    assert not torch.equal(tuned.state_dict()["model.layers.0.self_attn.q_proj.weight"],
                           base.state_dict()["model.layers.0.self_attn.q_proj.weight"])


@pytest.mark.django_db
@pytest.mark.parametrize("config, field, words", [
    ({**SMALL, "sft_file": "/no/such/file.jsonl"}, "sft_file", "no file at"),
    ({**SMALL, "demonstrations": False}, "project", "nothing to fine-tune on"),
    ({**SMALL, "project": "empty"}, "project", "no demonstrations"),
    ({**SMALL, "epochs": -1.0}, "epochs", "epochs must be > 0"),
    ({**SMALL, "preset": "gpu"}, "preset", "preset must be one of auto, paper, cpu"),
    ({**SMALL, "policy": "nope"}, "policy", "no policy version named 'nope'"),
    ({**SMALL, "name": "bad name!"}, "name", "not a usable name"),
    ({**SMALL, "lora_rank": 4, "processes": 2}, "processes", "LoRA fine-tuning runs in one process"),
])
def test_bad_sft_config_is_refused_naming_the_field(demonstrations, config, field, words):
    ProjectFactory(name="empty")
    with pytest.raises(ValidationError) as refused:
        jobs.sft_start(config=config)
    assert words in " ".join(refused.value.message_dict[field])
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_a_bad_sft_file_is_refused_naming_its_line_and_field(demonstrations, tmp_path):
    rows = tmp_path / "sft.jsonl"
    rows.write_text('{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}\n'
                    '{"messages": [{"role": "user", "content": "Hi"}, {"role": "robot", "content": "Yo"}]}\n')
    with pytest.raises(ValidationError) as refused:
        jobs.sft_start(config={**SMALL, "sft_file": str(rows)})
    assert "line 2, field “messages[1]”" in refused.value.message_dict["sft_file"][0]


@pytest.mark.django_db
def test_train_sft_command_refuses_bad_input_with_a_clear_message(demonstrations):
    with pytest.raises(CommandError, match="lora_rank must be >= 0"):
        call_command("train_sft", "--project", "helpful", "--lora-rank", "-1")
    with pytest.raises(CommandError, match="no project named 'nowhere'"):
        call_command("train_sft", "--project", "nowhere")


@pytest.mark.django_db
def test_staff_launch_sft_from_the_dashboard_and_bad_input_names_the_field(client, demonstrations):
    client.force_login(StaffFactory())
    url = reverse("dashboard:job_launch", args=[Job.Kind.SFT])
    assert 'name="demonstrations"' in client.get(url).content.decode()

    refused = client.post(url, {"project": "helpful", "epochs": "-1"})
    assert refused.status_code == 422 and "Epochs must be greater than 0" in refused.content.decode()
    assert not Job.objects.exists()

    launched = client.post(url, {"project": "helpful", "demonstrations": "on", "heldout_fraction": "0"})
    job = Job.objects.get(kind=Job.Kind.SFT)
    assert launched.status_code == 302 and job.params["config"]["name"] == "SFT-V1"
    assert job.params["config"]["project"] == "helpful"


@pytest.mark.django_db
def test_the_gatt_form_lets_staff_edit_the_instruction_lists(client, demonstrations):
    client.force_login(StaffFactory())
    html = client.get(reverse("dashboard:job_launch", args=[Job.Kind.GATT])).content.decode()
    assert 'name="languages"' in html and "French, Spanish, German, Italian" in html
