"""Ghost Attention: on a crafted dialogue the instruction rides on every user turn while
sampling and only on the first for training, where every token before the last answer carries
no loss; the language check and the turns-kept count; a GAtt job on the tiny model makes a GAtt
version with before/after evaluation; bad input refused naming the field."""

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from margin.models import Job
from rlhf import finetune_work, jobs
from rlhf.gatt import (
    HOBBY,
    LANGUAGE,
    GAttDialogue,
    Instruction,
    conversation,
    instruction_evaluation,
    language_kept,
    training_examples,
    turns_kept,
)
from rlhf.models import PolicyVersion
from rlhf.sft import IGNORE, sft_example
from tests.factories import DialogueFactory, ProjectFactory

FRENCH = Instruction(LANGUAGE, "French")
CRAFTED = GAttDialogue(FRENCH, ["Hi there.", "How are you?", "Goodbye."],
                       ["Bonjour, je suis là.", "Je vais bien, et vous?", "Au revoir et bonne journée."])


def test_the_instruction_is_on_every_user_turn_for_sampling_and_on_the_first_for_training():
    sampled = conversation(CRAFTED, 2, instruction_everywhere=True)
    assert [m["content"].startswith("Always answer in French.") for m in sampled if m["role"] == "user"] == [True] * 3

    examples = training_examples(CRAFTED)
    assert [answer for _, answer in examples] == CRAFTED.answers
    context, _ = examples[2]
    assert [m["content"] for m in context] == ["Always answer in French.\n\nHi there.", "Bonjour, je suis là.",
                                               "How are you?", "Je vais bien, et vous?", "Goodbye."]


def test_only_the_last_answer_carries_loss_in_a_gatt_example(tiny_lm):
    _, tokenizer = tiny_lm
    context, answer = training_examples(CRAFTED)[2]
    ids, labels = sft_example(tokenizer, context, answer, max_length=512)

    text = tokenizer.decode(ids)
    assert text.count("Always answer in French.") == 1 and "Je vais bien, et vous?" in text
    labelled = [token for token, label in zip(ids, labels) if label != IGNORE]
    assert labelled == ids[len(ids) - len(labelled):]  # one block at the end: the answer
    assert tokenizer.decode(labelled) == "Au revoir et bonne journée.<|im_end|>"


def test_the_language_check_tells_french_from_english_and_german():
    assert language_kept("Je pense que la réponse est dans le livre, et pas sur la table.", "French")
    assert not language_kept("I think the answer is in the book and not on the table.", "French")
    assert not language_kept("Ich denke, die Antwort ist nicht in dem Buch.", "French")
    assert language_kept("Ich denke, die Antwort ist nicht in dem Buch.", "German")
    assert language_kept("Watashi wa", "Japanese") is None  # no stop-word list: no check


def test_turns_kept_counts_the_turns_in_a_row_from_the_first():
    assert turns_kept([True, True, False, True]) == 2 and turns_kept([False, True]) == 0
    drifting = GAttDialogue(FRENCH, ["a", "b", "c"], ["Oui, je suis là pour vous.", "C'est une bonne question.",
                                                      "The answer is in the book."])
    hobby = GAttDialogue(Instruction(HOBBY, "tennis"), ["a"], ["Sure."])
    result = instruction_evaluation([drifting, hobby])  # no reward model: the hobby is not judged
    assert result["gatt/turns_kept"] == 2 and result["gatt/kept_by_turn"] == [1, 1, 0]
    assert result["dialogues"] == 1 and list(result["by_kind"]) == [LANGUAGE]


# --- the job ---------------------------------------------------------------------------------------

JOB = {"policy": "tiny", "project": "helpful", "preset": "cpu", "dialogues": 2, "turns": 2, "max_new_tokens": 4,
       "eval_dialogues": 2, "heldout_fraction": 0.5, "batch_size": 2, "learning_rate": 1e-3}


@pytest.fixture
def prompts(tiny_policy, settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    project = ProjectFactory(name="helpful")
    for _ in range(12):
        DialogueFactory(project=project)
    return tiny_policy


@pytest.mark.django_db
def test_gatt_job_makes_a_gatt_version_with_turns_kept_before_and_after(prompts):
    job = jobs.gatt_start(config=JOB)
    finetune_work.gatt_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.state == Job.State.SUCCEEDED, job.error
    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert version.name == "GAtt-V1" and version.kind == PolicyVersion.Kind.GATT and version.parent == prompts
    assert version.data["examples"] == 4 and version.data["instruction_kinds"] == {"hobby": 1, "language": 1}
    for label in ("turns_kept_before", "turns_kept_after"):  # one language dialogue judged by the detector
        assert version.metrics[label]["dialogues"] == 1 and len(version.metrics[label]["gatt/kept_by_turn"]) == 2
    assert "turns kept:" in job.log and len(version.metrics["loss/sft"]) == 2


@pytest.mark.django_db
@pytest.mark.parametrize("config, field", [
    ({**JOB, "hobbies": " ", "languages": "", "public_figures": ","}, "hobbies"),
    ({**JOB, "turns": 1}, "turns"),
    ({**JOB, "turns": 12}, "project"),  # more turns than training prompts
    ({**JOB, "helpfulness_rm": "no-such-rm"}, "helpfulness_rm"),
    ({**JOB, "policy": "nope"}, "policy"),
])
def test_bad_gatt_config_is_refused_naming_the_field(prompts, config, field):
    with pytest.raises(ValidationError) as refused:
        jobs.gatt_start(config=config)
    assert field in refused.value.message_dict
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_train_gatt_command_refuses_bad_input_with_a_clear_message(prompts):
    with pytest.raises(CommandError, match="turns must be >= 2"):
        call_command("train_gatt", "--project", "helpful", "--turns", "1")
