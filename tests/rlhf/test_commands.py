"""The policy commands: clear errors on bad input with nothing created, a real run on the tiny models."""

import json

import pytest
from django.core.management import CommandError, call_command

from margin.models import Job
from rewardmodel.models import RewardModel
from rlhf.models import PolicyVersion
from tests.factories import BatchFactory, DialogueFactory, ProjectFactory


@pytest.fixture(autouse=True)
def _model_store(settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"


@pytest.fixture
def world(tiny_policy, tiny_reward_model_path):
    RewardModel.objects.create(name="tiny-helpful", objective="helpfulness", base_model="tiny",
                               checkpoint_path=str(tiny_reward_model_path))
    project = ProjectFactory(name="helpful")
    for _ in range(6):
        DialogueFactory(project=project)
    BatchFactory(project=project)
    return tiny_policy


@pytest.mark.parametrize("command, args, message", [
    ("rejection_sample", ["--k", "0", "--helpfulness-rm", "tiny-helpful"], "k: k must be > 0, got 0"),
    ("rejection_sample", ["--helpfulness-rm", "tiny-helpful", "--curve-temperatures", "1.0", "-2"], "curve_temperatures"),
    ("train_ppo", ["--policy", "nope", "--helpfulness-rm", "tiny-helpful"], "policy: no policy version named 'nope'"),
    ("train_ppo", ["--helpfulness-rm", "no-such-rm"], "helpfulness_rm: no reward model named 'no-such-rm'"),
    ("train_ppo", ["--preset", "gpu", "--helpfulness-rm", "tiny-helpful"], "preset must be one of paper, cpu"),
    ("evaluate_policy", ["--policy", "tiny", "--helpfulness-rm", "tiny-helpful"], "against: the policy has no parent"),
    ("publish_samples", ["--project", "nope"], "project: no project named 'nope'"),
])
def test_bad_options_stop_with_a_clear_message_and_create_nothing(world, command, args, message):
    with pytest.raises(CommandError, match=message):
        call_command(command, *args)

    assert Job.objects.count() == 0 and PolicyVersion.objects.count() == 1


def test_a_config_file_that_is_not_json_is_named(world, tmp_path):
    bad = tmp_path / "ppo.json"
    bad.write_text("{iterations: 2")

    with pytest.raises(CommandError, match="ppo.json"):
        call_command("train_ppo", "--config", str(bad))


def test_train_ppo_runs_here_with_a_progress_bar_and_makes_a_version(world, tmp_path, capsys):
    config = tmp_path / "ppo.json"
    config.write_text(json.dumps({"iterations": 2, "batch_size": 2, "minibatch_size": 1, "max_new_tokens": 4}))

    call_command("train_ppo", "--config", str(config), "--helpfulness-rm", "tiny-helpful", "--max-prompts", "4",
                 "--name", "ppo-test")

    version = PolicyVersion.objects.get(name="ppo-test")
    assert version.parent == world and len(version.metrics["ppo_iterations"]) == 2
    job = Job.objects.get()
    assert job.state == Job.State.SUCCEEDED and job.kind == Job.Kind.PPO
    printed = capsys.readouterr()
    assert "iteration 2/2" in printed.out  # the per-iteration log line
    assert "2/2" in printed.err  # the bar, on stderr


def test_queue_only_creates_the_job(world, django_capture_on_commit_callbacks):
    call_command("evaluate_policy", "--policy", "tiny", "--against", "tiny", "--helpfulness-rm", "tiny-helpful",
                 "--heldout-fraction", "0.5", "--queue")

    job = Job.objects.get()
    assert job.kind == Job.Kind.EVALUATE_POLICY and job.state == Job.State.QUEUED


def test_sample_writes_k_responses_per_prompt(world, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Hi"}\n{"messages": [{"role": "user", "content": "Name a colour."}]}\n')
    out = tmp_path / "samples.jsonl"

    call_command("sample", "--policy", "tiny", "--prompts", str(prompts), "--k", "3", "--max-new-tokens", "4",
                 "--out", str(out))

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [len(r["responses"]) for r in rows] == [3, 3]
    assert rows[1]["messages"][0]["content"] == "Name a colour." and rows[0]["policy"] == "tiny"


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "Hi"}\nnot json\n', "line 2, field “\\(line\\)”: not JSON: Expecting value at column 1"),
    ('{"question": "Hi"}\n', 'line 1: expected {"prompt"'),
])
def test_sample_names_the_bad_line(world, tmp_path, content, message):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(content)

    with pytest.raises(CommandError, match=message):
        call_command("sample", "--prompts", str(prompts), "--out", str(tmp_path / "out.jsonl"))


def test_sample_refuses_bad_settings(world, tmp_path):
    with pytest.raises(CommandError, match="top_p"):
        call_command("sample", "--project", "helpful", "--top-p", "0", "--out", str(tmp_path / "o.jsonl"))
    with pytest.raises(CommandError, match="--policy: no policy version"):
        call_command("sample", "--project", "helpful", "--policy", "nope", "--out", str(tmp_path / "o.jsonl"))
