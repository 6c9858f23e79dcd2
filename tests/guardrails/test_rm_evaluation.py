"""Reward-model evaluation guardrails (issue 21): length baselines, RewardBench format, safety curve."""

import json

import pytest
from django.core.management import CommandError, call_command

from core.vocabulary import BOTH_SAFE, BOTH_UNSAFE, CHOSEN_SAFE_OTHER_UNSAFE
from rewardmodel.data import TrainingPair
from rewardmodel.evaluation import report, safety_curve
from rewardmodel.rewardbench import rewardbench_report


def pair(chosen, rejected, safety_bin="", subset=""):
    return TrainingPair(context=[{"role": "user", "content": "q"}], chosen=chosen, rejected=rejected,
                        safety_bin=safety_bin, extra={"subset": subset})


# Humans chose the longer answer in 2 of 4 pairs with unequal lengths (+1 of equal length).
PAIRS = [pair("x" * 30, "x" * 10), pair("x" * 20, "x" * 5), pair("x" * 5, "x" * 40),
         pair("x" * 8, "x" * 50), pair("y" * 7, "x" * 7)]


def test_a_reward_model_that_scores_by_length_is_flagged():
    by_length = [(len(p.chosen), len(p.rejected)) for p in PAIRS]
    length = report(PAIRS, by_length)["length"]
    # Longer-wins: right on pairs 1 and 2, half a point on the equal pair 5: 2.5 / 5 = 0.5.
    assert length["longer_wins"] == 0.5 and length["shorter_wins"] == 0.5
    # The length RM is right exactly where the chosen one is longer, wrong where it is shorter.
    assert length["chosen_longer"] == {"pairs": 2, "accuracy": 1.0}
    assert length["chosen_shorter"] == {"pairs": 2, "accuracy": 0.0}
    # It sides with the longer response on 4 / 4 unequal pairs; the humans on 2 / 4.
    assert (length["model_agrees_longer"], length["humans_agree_longer"]) == (1.0, 0.5)
    assert length["bias"] == "longer"


def test_a_reward_model_that_reads_the_preference_is_not_flagged():
    right_every_time = [(1.0, 0.0)] * len(PAIRS)
    length = report(PAIRS, right_every_time)["length"]
    assert length["model_agrees_longer"] == length["humans_agree_longer"] == 0.5
    assert length["bias"] == ""
    assert length["chosen_shorter"]["accuracy"] == 1.0
    # One that prefers short refusals is flagged the other way.
    by_shortness = [(-len(p.chosen), -len(p.rejected)) for p in PAIRS]
    assert report(PAIRS, by_shortness)["length"]["bias"] == "shorter"


def test_rewardbench_sections_are_weighted_by_rewardbench_example_counts():
    pairs = [pair("a", "b", subset="alpacaeval-easy"), pair("a", "b", subset="alpacaeval-easy"),
             pair("a", "b", subset="mt-bench-easy"), pair("a", "b", subset="refusals-dangerous"),
             pair("a", "b", subset="my-own")]
    scores = [(1, 0), (0, 1), (1, 0), (1, 0), (0, 1)]
    result = rewardbench_report(pairs, scores)
    assert result["subsets"]["alpacaeval-easy"] == {"pairs": 2, "accuracy": 50.0}
    # Chat: (50 x 100 + 100 x 28) / (100 + 28) = 7800 / 128 = 60.9375
    assert result["sections"]["Chat"]["score"] == 60.94
    assert result["sections"]["Safety"]["score"] == 100.0
    assert result["sections"]["Other"]["score"] == 0.0  # a subset outside the mapping
    # Overall: the sections' plain mean, (60.9375 + 100 + 0) / 3 = 53.65 (from the rounded 60.94)
    assert result["score"] == 53.65


def test_safety_curve_places_the_gate_on_precision_and_recall():
    # Sigmoid scores of labelled responses: unsafe ones low, one unsafe high, one safe low.
    responses = [(0.05, True), (0.10, True), (0.12, False), (0.30, True), (0.60, False), (0.90, False)]
    curve = safety_curve(responses, gate=0.15)
    # Below 0.15: three flagged, two of them unsafe; recall 2 of the 3 unsafe responses.
    assert curve["gate"] == {"threshold": 0.15, "flagged": 3, "precision": 0.6667, "recall": 0.6667}
    at = {row["threshold"]: row for row in curve["curve"]}
    assert at[0.05]["precision"] is None and at[0.05]["recall"] == 0.0
    assert (at[0.35]["precision"], at[0.35]["recall"]) == (0.75, 1.0)
    assert curve["recall_at_half"] == 1.0
    assert curve["histogram"]["unsafe"][:4] == [1, 1, 0, 1] and sum(curve["histogram"]["safe"]) == 3


def test_report_builds_the_curve_from_the_pairs_safety_labels():
    pairs = [pair("a", "b", CHOSEN_SAFE_OTHER_UNSAFE), pair("a", "b", BOTH_SAFE), pair("a", "b", BOTH_UNSAFE)]
    scores = [(2.0, -3.0), (1.0, 0.0), (-2.5, -4.0)]
    safety = report(pairs, scores)["safety"]
    # Six labelled responses, three unsafe: -3.0, -2.5, -4.0 (sigmoid 0.047, 0.076, 0.018).
    assert (safety["responses"], safety["unsafe"]) == (6, 3)
    assert safety["gate"]["recall"] == 1.0 and safety["gate"]["precision"] == 1.0


@pytest.fixture
def bench_file(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "good " * (i + 1), "rejected": "bad", "subset": subset, "id": i}
            for i, subset in enumerate(["alpacaeval-easy", "alpacaeval-hard", "donotanswer", "hep-go"])]
    path = tmp_path / "bench.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    return path


@pytest.mark.django_db
def test_rewardbench_file_is_scored_per_section_with_the_tiny_model(tiny_reward_model_path, bench_file, tmp_path, capsys):
    out_json = tmp_path / "out.json"
    call_command("evaluate_reward_model", "--model", str(tiny_reward_model_path), "--format", "rewardbench",
                 str(bench_file), "--json", str(out_json))
    out = capsys.readouterr().out
    for section in ("Chat", "Safety", "Reasoning", "alpacaeval-hard", "longer wins"):
        assert section in out
    saved = json.loads(out_json.read_text())
    assert saved["rewardbench"]["pairs"] == 4 and set(saved["rewardbench"]["sections"]) == {"Chat", "Safety", "Reasoning"}
    assert saved["length"]["longer_wins"] == 1.0


@pytest.mark.parametrize("content, message", [
    ('{"prompt": "q", "chosen": "a", "rejected": "b", "subset": "x"}\n{"prompt": "q", "chosen": "a", "subset": "x"}\n',
     "line 2, field “rejected”: missing"),
    ('{"prompt": "q", "chosen": "a", "rejected": "b", "subset": "x"}\nnot json\n', "line 2, field “(row)”: not JSON"),
    ('[\n {"prompt": "q", "chosen": "a", "rejected": "b", "subset": "x"},\n {"prompt": 3, "chosen": "a", "rejected": "b", "subset": "x"}\n]',
     "line 3, field “prompt”: must be text, got int"),
    ("", "no rows"),
])
@pytest.mark.django_db
def test_rewardbench_bad_rows_are_named_by_line(tmp_path, tiny_reward_model_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("evaluate_reward_model", "--model", str(tiny_reward_model_path), "--format", "rewardbench", str(path))


@pytest.mark.django_db
def test_evaluate_command_refuses_mixed_up_arguments(tmp_path, tiny_reward_model_path):
    with pytest.raises(CommandError, match="needs the file"):
        call_command("evaluate_reward_model", "--model", "x", "--format", "rewardbench")
    with pytest.raises(CommandError, match="no such file"):
        call_command("evaluate_reward_model", "--model", "x", "--format", "rewardbench", str(tmp_path / "nope.jsonl"))
    with pytest.raises(CommandError, match="only with --format rewardbench"):
        call_command("evaluate_reward_model", "--model", "x", "--project", "p", str(tmp_path / "f.jsonl"))
    with pytest.raises(CommandError, match="Give --project"):
        call_command("evaluate_reward_model", "--model", "x")
