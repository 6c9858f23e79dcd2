"""Served policy versions on the Django side: the backend fields and their errors, the
register_policy / serve_policy commands, the dashboard form, and a write-a-prompt pair whose
server is down (the job fails with the reason, nothing is stored, the annotator is told)."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation import services
from annotation.models import Comparison
from margin.models import Job
from rlhf.models import PolicyVersion
from rlhf.pairs import generate_pair_run
from tests.factories import BatchFactory, StaffFactory, UserFactory
from tests.integration.vllm_server import free_port

pytestmark = pytest.mark.django_db


def served_version(**fields):
    return PolicyVersion.objects.create(**{
        "name": "served", "checkpoint_path": "", "backend": "openai", "served_model": "smollm2",
        "openai_base_url": f"http://127.0.0.1:{free_port()}/v1", **fields})


@pytest.mark.parametrize("fields, field", [
    ({"openai_base_url": ""}, "openai_base_url"),
    ({"served_model": ""}, "served_model"),
    ({"api_key_env": "sk-live-1234"}, "api_key_env"),
    ({"max_in_flight": 0}, "max_in_flight"),
    ({"timeout_seconds": 0}, "timeout_seconds"),
])
def test_a_served_version_with_a_missing_or_bad_setting_names_the_field(fields, field):
    version = PolicyVersion(**{"name": "v", "checkpoint_path": "", "backend": "openai", "served_model": "m",
                               "openai_base_url": "http://gpu:8000/v1", **fields})

    with pytest.raises(ValidationError) as error:
        version.full_clean()

    assert list(error.value.message_dict) == [field]


def test_register_policy_creates_a_served_version_and_switches_an_existing_one(capsys):
    call_command("register_policy", "llama-70b", "--openai-url", "http://gpu-1:8000/v1", "--served-model", "meta/70b",
                 "--api-key-env", "GPU1_KEY")
    PolicyVersion.objects.create(name="RLHF-V1", checkpoint_path="/store/v1")
    call_command("register_policy", "RLHF-V1", "--openai-url", "http://gpu-2:8000/v1", "--served-model", "RLHF-V1")

    served = PolicyVersion.objects.get(name="llama-70b")
    assert (served.backend, served.openai_base_url, served.served_model, served.api_key_env) == (
        "openai", "http://gpu-1:8000/v1", "meta/70b", "GPU1_KEY")
    switched = PolicyVersion.objects.get(name="RLHF-V1")
    assert switched.backend == "openai" and switched.checkpoint_path == "/store/v1"
    assert "registered llama-70b" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--openai-url", "not a url", "--served-model", "m"], "--openai-url: .not a url. is not an http\\(s\\) URL"),
    (["--openai-url", "http://gpu:8000/v1", "--served-model", "m", "--api-key-env", "sk-123"], "--api-key-env: the name"),
    (["--openai-url", "http://gpu:8000/v1", "--served-model", "m", "--parent", "nope"], "--parent: no policy version"),
    (["--openai-url", "http://gpu:8000/v1", "--served-model", "m", "--max-in-flight", "0"], "--max-in-flight: must be"),
])
def test_register_policy_refuses_bad_input_naming_the_flag(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("register_policy", "v", *args)
    assert not PolicyVersion.objects.filter(name="v").exists()


def test_serve_policy_prints_vllm_serve_for_a_full_checkpoint_and_for_a_lora_adapter(tmp_path, capsys):
    base = tmp_path / "sft"
    adapter = tmp_path / "lora"
    base.mkdir(), adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "base_model_name_or_path": "/moved"}))
    sft = PolicyVersion.objects.create(name="SFT", checkpoint_path=str(base))
    PolicyVersion.objects.create(name="RLHF-V1", checkpoint_path=str(adapter), parent=sft)

    call_command("serve_policy", "SFT", "--port", "8001")
    call_command("serve_policy", "RLHF-V1")

    full, lora = capsys.readouterr().out.splitlines()
    assert full == f"vllm serve {base} --served-model-name SFT --host 0.0.0.0 --port 8001 --dtype auto"
    assert lora == (f"vllm serve {base} --host 0.0.0.0 --port 8000 --dtype auto --enable-lora "
                    f"--lora-modules RLHF-V1={adapter} --max-lora-rank 8")


def test_serve_policy_names_a_version_without_weights():
    served_version()
    with pytest.raises(CommandError, match="checkpoint_path: 'served' has no checkpoint on this machine"):
        call_command("serve_policy", "served")
    with pytest.raises(CommandError, match="NAME: no policy version named 'ghost'"):
        call_command("serve_policy", "ghost")


SERVER_FORM = {"backend": "openai", "openai_base_url": "http://gpu-1:8000/v1", "served_model": "RLHF-V1",
               "api_key_env": "GPU1_KEY", "max_in_flight": 32, "timeout_seconds": 60}


def backend_post(client, role, **changes):
    """(response, the version afterwards) for a staff member with `role` posting the backend form."""
    version = PolicyVersion.objects.create(name="RLHF-V1", checkpoint_path="/store/v1")
    client.force_login(StaffFactory(roles=[role]))
    response = client.post(reverse("dashboard:policy_backend", args=[version.pk]), {**SERVER_FORM, **changes},
                           follow=True)
    version.refresh_from_db()
    return response, version


def test_staff_point_a_version_at_a_server_in_the_dashboard(client):
    response, version = backend_post(client, "ml_operator")

    assert (version.backend, version.served_model, version.max_in_flight) == ("openai", "RLHF-V1", 32)
    assert "RLHF-V1 now generates with: OpenAI-compatible server." in response.content.decode()
    assert 'name="served_model" value="RLHF-V1"' in response.content.decode()  # the form, filled in


def test_the_dashboard_form_names_a_missing_setting_and_keeps_the_version(client):
    response, version = backend_post(client, "ml_operator", openai_base_url="")

    assert response.status_code == 422
    assert "an OpenAI-compatible backend needs the server&#x27;s base URL" in response.content.decode()
    assert version.backend == "local"


def test_a_viewer_cannot_change_a_backend(client):
    response, version = backend_post(client, "viewer")

    assert response.status_code == 403
    assert version.backend == "local"


def test_a_pair_whose_server_is_down_fails_clearly_stores_nothing_and_keeps_the_prompt(client):
    served_version(timeout_seconds=5)
    author = UserFactory()
    batch = BatchFactory()
    job = services.dialogue_start(annotator=author, project=batch.project, prompt="Is the server up?")

    with pytest.raises(Exception, match="unavailable"):
        generate_pair_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.FAILED
    assert job.error.startswith("GenerationUnavailable: 'smollm2' served at http://127.0.0.1:")
    assert "cannot connect" in job.error
    assert not Comparison.objects.exists()
    client.force_login(author)
    page = client.get(reverse("annotation:pair_status", args=[job.pk]), HTTP_HX_REQUEST="true")
    html = page.content.decode()
    assert page.status_code == 286
    assert "Generation is unavailable, your prompt is kept" in html and "Is the server up?" in html
