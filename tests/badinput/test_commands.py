"""Every management command with bad arguments and bad files: a CommandError (no traceback)
whose message names the option, or the file, line and field, and no row changed. No case loads
a model: each one is refused before that. Cases already in tests/dataio/test_bad_files.py,
tests/rewardmodel/test_commands.py and tests/rlhf/test_commands.py are not repeated."""

import json

import pytest
from django.core.management import CommandError, call_command

from annotation.services import batch_open
from rlhf.models import PolicyVersion
from tests.badinput.conftest import assert_unchanged, db_snapshot
from tests.factories import BatchFactory, ComparisonFactory, JudgmentFactory, ProjectFactory

# db_sensitive: PostgreSQL refuses NUL characters and over-long text where SQLite stores them,
# so scripts/test runs this matrix on both.
pytestmark = [pytest.mark.django_db, pytest.mark.db_sensitive]
LATIN1 = '{"prompt": "caf\u00e9"}'.encode("latin-1")


@pytest.fixture
def world(db, settings, tmp_path):
    """A judged project, an open batch, a policy version (its checkpoint is never opened), and
    files: good.jsonl, latin1.jsonl (second line not UTF-8), list.json (JSON, not an object)."""
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    project = ProjectFactory(name="Helpful")
    JudgmentFactory(comparison=ComparisonFactory(batch=BatchFactory(project=project, number=1)))
    batch_open(project=project)
    PolicyVersion.objects.create(name="base", checkpoint_path=str(tmp_path / "nowhere"))
    (tmp_path / "good.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"}]}) + "\n")
    (tmp_path / "latin1.jsonl").write_bytes(b'{"prompt": "ok"}\n' + LATIN1 + b"\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "typed.json").write_text(json.dumps({"kl_beta": "high"}))
    (tmp_path / "nul.json").write_text('{"policy": "base\\u0000"}')
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000 + "\n")  # past Python's recursion limit
    return tmp_path


CASES = {
    # seed_demo
    "seed_demo: count of the wrong type": (["seed_demo", "--pairs", "many"], "argument --pairs: invalid int value: 'many'"),
    # import_data
    "import_data: batch of the wrong type": (
        ["import_data", "{tmp}/good.jsonl", "--project", "Helpful", "--format", "margin", "--batch", "two"],
        "argument --batch: invalid int value: 'two'"),
    "import_data: unknown batch": (
        ["import_data", "{tmp}/good.jsonl", "--project", "Helpful", "--format", "margin", "--batch", "9"],
        "Project “Helpful” has no batch 9."),
    "import_data: batch past any integer": (
        ["import_data", "{tmp}/good.jsonl", "--project", "Helpful", "--format", "margin", "--batch", "9" * 30],
        f"Project “Helpful” has no batch {'9' * 30}."),
    "import_data: a folder for the file": (
        ["import_data", "{tmp}", "--project", "Helpful", "--format", "margin"], "No such file: {tmp}"),
    "import_data: path-like file name": (
        ["import_data", "{tmp}/../../etc/x.jsonl", "--project", "Helpful", "--format", "margin"], "No such file"),
    "import_data: project missing": (["import_data", "{tmp}/good.jsonl", "--format", "margin"],
                                     "the following arguments are required: --project"),
    # export_data
    "export_data: agreement out of range": (
        ["export_data", "{tmp}/out.jsonl", "--project", "Helpful", "--min-agreement", "2"],
        "min_agreement must be between 0 and 1, got 2.0"),
    "export_data: agreement of the wrong type": (
        ["export_data", "{tmp}/out.jsonl", "--project", "Helpful", "--min-agreement", "most"],
        "argument --min-agreement: invalid float value: 'most'"),
    "export_data: unknown batch": (["export_data", "{tmp}/out.jsonl", "--project", "Helpful", "--batch", "9"],
                                   "No batch 9 in the chosen projects."),
    "export_data: batch past any integer": (
        ["export_data", "{tmp}/out.jsonl", "--project", "Helpful", "--batch", "9" * 30],
        f"No batch {'9' * 30} in the chosen projects."),
    "export_data: unknown kind": (["export_data", "{tmp}/out.jsonl", "--project", "Helpful", "--kind", "sql"],
                                  "argument --kind: invalid choice: 'sql'"),
    "export_data: unknown output format": (
        ["export_data", "{tmp}/out.xlsx", "--project", "Helpful", "--as", "xlsx"], "argument --as: invalid choice: 'xlsx'"),
    "export_data: output is a folder": (["export_data", "{tmp}", "--project", "Helpful"],
                                        "Cannot write {tmp}: Is a directory"),
    # train_reward_model
    "train_reward_model: float given a word": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "learning_rate=fast"],
        "learning_rate: learning_rate must be float, got str 'fast'"),
    "train_reward_model: int given a fraction": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "max_pairs=1.5"],
        "max_pairs: max_pairs must be int, got float 1.5"),
    "train_reward_model: float given a list": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "epochs=[1, 2]"],
        "epochs: epochs must be float, got list"),
    "train_reward_model: NaN": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "learning_rate=NaN"],
        "learning_rate: learning_rate must be a finite number, got nan"),
    "train_reward_model: infinity": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "epochs=Infinity"],
        "epochs: epochs must be a finite number, got inf"),
    "train_reward_model: NUL escaped in JSON": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", 'base_model="a\\u0000b"'],
        "base_model: base_model must not contain a NUL character"),
    "train_reward_model: probe with LoRA": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "method=probe", "--set", "lora_rank=8"],
        "lora_rank: lora_rank is 8, but the probe (method probe) trains no weights of the model"),
    "train_reward_model: probe layers not numbers": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "method=probe",
         "--set", 'probe_layers="last"'],
        "probe_layers: probe_layers must be layer numbers separated by commas, e.g. 8,16,24,30; got 'last'"),
    "train_reward_model: --set without a name": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "=1"], "--set expects name=value, got '=1'"),
    "train_reward_model: config not an object": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--config", "{tmp}/list.json"],
        "--config {tmp}/list.json must hold a JSON object of field values"),
    "train_reward_model: config missing": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--config", "{tmp}/none.json"],
        "Cannot read --config {tmp}/none.json"),
    "train_reward_model: config not UTF-8": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--config", "{tmp}/latin1.jsonl"],
        "latin1.jsonl, line 2, field “(line)”: not UTF-8 text: byte 0xe9"),
    "train_reward_model: name with a NUL byte": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm\x00"], "is not a usable name"),
    # evaluate_reward_model
    "evaluate_reward_model: neither --model nor --all": (
        ["evaluate_reward_model", "--project", "Helpful"], "Give either --model NAME or --all."),
    "evaluate_reward_model: both --model and --all": (
        ["evaluate_reward_model", "--project", "Helpful", "--model", "x", "--all"], "Give either --model NAME or --all."),
    "evaluate_reward_model: unknown project": (
        ["evaluate_reward_model", "--project", "Nope", "--all"], "Unknown project 'Nope'."),
    "evaluate_reward_model: unknown model": (
        ["evaluate_reward_model", "--project", "Helpful", "--model", "ghost"], "no reward model named 'ghost'"),
    "evaluate_reward_model: --json into a missing folder": (
        ["evaluate_reward_model", "--project", "Helpful", "--all", "--json", "{tmp}/no/such/r.json"],
        "--json: the folder {tmp}/no/such does not exist."),
    # score_responses
    "score_responses: batch size zero": (
        ["score_responses", "--model", "x", "--input", "{tmp}/good.jsonl", "--output", "{tmp}/o.jsonl",
         "--batch-size", "0"], "--batch-size must be at least 1."),
    "score_responses: input missing": (
        ["score_responses", "--model", "x", "--input", "{tmp}/none.jsonl", "--output", "{tmp}/o.jsonl"],
        "Cannot read --input"),
    "score_responses: input not UTF-8": (
        ["score_responses", "--model", "x", "--input", "{tmp}/latin1.jsonl", "--output", "{tmp}/o.jsonl"],
        "latin1.jsonl, line 2, field “(line)”: not UTF-8 text: byte 0xe9"),
    # sample
    "sample: prompts missing": (["sample", "--prompts", "{tmp}/none.jsonl", "--out", "{tmp}/o.jsonl"],
                                "--prompts {tmp}/none.jsonl: No such file or directory"),
    "sample: prompts not UTF-8": (["sample", "--prompts", "{tmp}/latin1.jsonl", "--out", "{tmp}/o.jsonl"],
                                  "latin1.jsonl, line 2, field “(line)”: not UTF-8 text: byte 0xe9"),
    "sample: messages that are not messages": (["sample", "--prompts", "{tmp}/bad-messages.jsonl", "--out", "{tmp}/o.jsonl"],
                                               "bad-messages.jsonl line 2: messages[0] must be"),
    "sample: k zero": (["sample", "--prompts", "{tmp}/good.jsonl", "--out", "{tmp}/o.jsonl", "--k", "0"],
                       "--k must be >= 1, got 0"),
    "sample: unknown project": (["sample", "--project", "Nope", "--out", "{tmp}/o.jsonl"],
                                "--project: no project named 'Nope'"),
    "sample: temperature of the wrong type": (
        ["sample", "--prompts", "{tmp}/good.jsonl", "--out", "{tmp}/o.jsonl", "--temperature", "hot"],
        "argument --temperature: invalid float value: 'hot'"),
    # the policy jobs
    "train_ppo: config nested too deeply": (["train_ppo", "--config", "{tmp}/deep.json"], "JSON nested too deeply"),
    "train_reward_model: config nested too deeply": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--config", "{tmp}/deep.json"],
        "--config {tmp}/deep.json: JSON nested too deeply"),
    "train_reward_model: --set nested too deeply": (
        ["train_reward_model", "--project", "Helpful", "--name", "rm", "--set", "lr=" + "[" * 100_000],
        "--set lr: JSON nested too deeply"),
    "score_responses: input nested too deeply": (
        ["score_responses", "--model", "x", "--input", "{tmp}/deep.json", "--output", "{tmp}/o.jsonl"],
        "line 1, field “(line)”: JSON nested too deeply"),
    "sample: prompts nested too deeply": (["sample", "--prompts", "{tmp}/deep.json", "--out", "{tmp}/o.jsonl"],
                                          "deep.json, line 1, field “(line)”: JSON nested too deeply"),
    "train_ppo: config not an object": (["train_ppo", "--config", "{tmp}/list.json"], "must hold a JSON object of field values"),
    "train_ppo: config not UTF-8": (["train_ppo", "--config", "{tmp}/latin1.jsonl"],
                                    "latin1.jsonl, line 2, field “(line)”: not UTF-8 text: byte 0xe9"),
    "train_ppo: config value of the wrong type": (["train_ppo", "--config", "{tmp}/typed.json"], "kl_beta"),
    "train_ppo: option of the wrong type": (["train_ppo", "--kl-beta", "high"],
                                            "argument --kl-beta: invalid float value: 'high'"),
    "train_ppo: infinite option": (["train_ppo", "--learning-rate", "inf", "--queue"],
                                   "learning_rate: learning_rate must be a finite number, got inf"),
    "rejection_sample: NaN in a list option": (["rejection_sample", "--curve-temperatures", "0.7", "nan", "--queue"],
                                               "curve_temperatures must be a finite number, got nan"),
    "train_ppo: NUL escaped in the config file": (["train_ppo", "--config", "{tmp}/nul.json"],
                                                  "policy: policy must not contain a NUL character"),
    "train_ppo: int option given a fraction": (["train_ppo", "--iterations", "1.5"],
                                               "argument --iterations: invalid int value: '1.5'"),
    "rejection_sample: unknown policy": (["rejection_sample", "--policy", "ghost"], "policy: no policy version named 'ghost'"),
    "evaluate_policy: unknown project": (["evaluate_policy", "--policy", "base", "--against", "base", "--project", "Nope"],
                                         "project: no project named 'Nope'"),
    "publish_samples: unknown policy": (["publish_samples", "--project", "Helpful", "--policy-a", "ghost"],
                                        "policy_a: no policy version named 'ghost'"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_command_refuses_bad_input_by_name_and_changes_nothing(world, case):
    arguments, message = CASES[case]
    (world / "bad-messages.jsonl").write_text('{"prompt": "Hi"}\n{"messages": ["Hi"]}\n')
    arguments = [a.replace("{tmp}", str(world)) for a in arguments]
    before = db_snapshot()
    with pytest.raises(CommandError) as refused:
        call_command(*arguments, verbosity=0)
    assert message.replace("{tmp}", str(world)) in str(refused.value)
    assert "Traceback" not in str(refused.value)
    assert_unchanged(before)
    assert not (world / "o.jsonl").exists()
