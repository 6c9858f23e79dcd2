"""train_reward_model, evaluate_reward_model and score_responses, with good and bad input."""

import json
import re

import pytest
from django.core.management import CommandError, call_command

from margin.models import Job
from rewardmodel.models import RewardModel, RewardModelEvaluation
from rewardmodel.scoring import load_scorer
from tests.factories import ProjectFactory
from tests.rewardmodel.conftest import tiny_config

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    return settings.MARGIN_MODEL_STORE


def test_train_registers_evaluates_and_reports_per_strength(rm_project, tiny_model_path, store, capsys):
    call_command("train_reward_model", "--project", rm_project.name, "--name", "helpful-v1",
                 *tiny_config(tiny_model_path))
    out = capsys.readouterr().out
    model = RewardModel.objects.get(name="helpful-v1")
    assert model.objective == "helpfulness" and model.project == rm_project
    assert model.checkpoint_path.startswith(str(store)) and model.config["learning_rate"] == 3e-4
    assert model.data["heldout_pairs"] > 0 and model.data["train_pairs"] > 0
    assert model.job.state == Job.State.SUCCEEDED and model.job.progress_step == model.metrics["steps"]
    assert "Held-out accuracy" in out and "slightly_better" in out
    # One evaluation for the whole held-out part and one per batch, for the per-batch plot.
    evaluations = RewardModelEvaluation.objects.filter(reward_model=model)
    assert evaluations.filter(batch=None).count() == 1
    assert evaluations.exclude(batch=None).count() == 2
    assert model.metrics["heldout"]["accuracy"] >= 0.8

    # A second model on the same project records the first as its parent; both compared.
    call_command("train_reward_model", "--project", rm_project.name, "--name", "helpful-v2",
                 *tiny_config(tiny_model_path, "--set", "margin_scheme=large"), "--truncation-side", "right")
    assert RewardModel.objects.get(name="helpful-v2").parent == model
    # Whatever scores it later (PPO, the reward server) cuts long dialogues as it was trained.
    assert (load_scorer("helpful-v1").truncation_side, load_scorer("helpful-v2").truncation_side) == ("left", "right")
    capsys.readouterr()
    call_command("evaluate_reward_model", "--model", "helpful-v1", "--project", rm_project.name,
                 "--against", "helpful-v2")
    out = capsys.readouterr().out
    assert "only helpful-v1 right" in out and "score gap" in out

    # A new batch arrives: --all puts every model on every batch's held-out part.
    RewardModelEvaluation.objects.all().delete()
    call_command("evaluate_reward_model", "--all", "--project", rm_project.name)
    assert "helpful-v2" in capsys.readouterr().out
    for name in ("helpful-v1", "helpful-v2"):
        assert RewardModelEvaluation.objects.filter(reward_model__name=name).exclude(batch=None).count() == 2


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--project", "Nope", "--name", "x"], "Unknown project 'Nope'"),
        (["--name", "x", "--set", "learning_rate=-1"], "learning_rate must be > 0"),
        (["--name", "x", "--set", "learnin_rate=1"], "unknown config field 'learnin_rate'"),
        (["--name", "x", "--set", "margin_scheme=huge"], "margin_scheme"),
        (["--name", "x", "--set", "oops"], "--set expects name=value"),
        # One option per config field, as the policy commands have; it wins over --set.
        (["--name", "x", "--set", "learning_rate=0.001", "--learning-rate", "-1"], "learning_rate must be > 0"),
        (["--name", "x", "--margin-scheme", "huge"], "margin_scheme must be none, small or large"),
        (["--name", "x", "--truncation-side", "middle"], "truncation_side must be one of left, right, got 'middle'"),
        (["--name", "../etc", "--set", "epochs=1"], "not a usable name"),
    ],
)
def test_train_refuses_bad_input_and_creates_nothing(rm_project, arguments, message):
    if "--project" not in arguments:
        arguments = ["--project", rm_project.name, *arguments]
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("train_reward_model", *arguments)
    assert not Job.objects.exists() and not RewardModel.objects.exists()


def test_train_on_too_little_data_says_so_before_training_and_registers_nothing(
    rm_project, tiny_model_path, store, capsys
):
    with pytest.raises(CommandError, match=f"project '{rm_project.name}' has too little data .*0 held-out pairs"):
        call_command("train_reward_model", "--project", rm_project.name, "--name", "thin",
                     *tiny_config(tiny_model_path), "--heldout-fraction", "0")
    assert "evaluating" not in capsys.readouterr().out  # it never got as far as training
    assert Job.objects.get().state == Job.State.FAILED
    assert not RewardModel.objects.exists() and not (store / "reward_models" / "thin").exists()


def test_train_refuses_a_project_without_judgments_and_a_bad_config_file(tmp_path):
    empty = ProjectFactory(name="Empty")
    with pytest.raises(CommandError, match="no judged comparisons"):
        call_command("train_reward_model", "--project", empty.name, "--name", "x")
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(CommandError, match="is not JSON"):
        call_command("train_reward_model", "--project", empty.name, "--name", "x", "--config", str(bad))
    assert not Job.objects.exists()


def test_score_responses_adds_a_score_to_each_line(tiny_reward_model_path, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [
        {"id": "q1", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}],
         "extra": "kept"},
        {"id": 2, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
                               {"role": "assistant", "content": "4"}]},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    target = tmp_path / "out.jsonl"
    call_command("score_responses", "--model", str(tiny_reward_model_path), "--input", str(source),
                 "--output", str(target))
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [w["id"] for w in written] == ["q1", 2] and written[0]["extra"] == "kept"
    assert all(isinstance(w["score"], float) for w in written)
    assert written[0]["score"] != written[1]["score"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1, "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}\n'
         "{broken\n", "line 2, field “(line)”: not JSON"),
        ('{"messages": [{"role": "assistant", "content": "yo"}]}\n', "line 1, field “id”: missing"),
        ('{"id": 1, "messages": [{"role": "user", "content": "hi"}]}\n', "last message must be the assistant"),
        ('{"id": 1, "messages": [{"role": "robot", "content": "hi"}]}\n', "role must be one of"),
        ('{"id": 1, "messages": "hello"}\n', "messages must be a non-empty list"),
        ("", "no records"),
    ],
)
def test_score_responses_names_the_bad_line_and_writes_nothing(tiny_reward_model_path, tmp_path, content, message):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(content)
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("score_responses", "--model", str(tiny_reward_model_path), "--input", str(source),
                     "--output", str(target))
    assert not target.exists()


def test_score_responses_and_evaluate_refuse_unknown_models(tmp_path, rm_project):
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "messages": [{"role": "assistant", "content": "yo"}]}\n')
    with pytest.raises(CommandError, match="no reward model named 'ghost'"):
        call_command("score_responses", "--model", "ghost", "--input", str(source), "--output", str(tmp_path / "o"))
    with pytest.raises(CommandError, match="Cannot read --input"):
        call_command("score_responses", "--model", "ghost", "--input", str(tmp_path / "missing.jsonl"),
                     "--output", str(tmp_path / "o"))
    with pytest.raises(CommandError, match="no reward model named 'ghost'"):
        call_command("evaluate_reward_model", "--model", "ghost", "--project", rm_project.name)
    with pytest.raises(CommandError, match="Unknown project"):
        call_command("evaluate_reward_model", "--model", "ghost", "--project", "Nope")
    with pytest.raises(CommandError, match="either --model NAME or --all"):
        call_command("evaluate_reward_model", "--project", rm_project.name)
    with pytest.raises(CommandError, match="no trained helpfulness reward model"):
        call_command("evaluate_reward_model", "--all", "--project", rm_project.name)
