"""DPO: the three losses against hand-computed values, the response mask on the tiny model, a
few steps that move the implicit reward the right way (full and LoRA), resume, and the job from
judged comparisons into a DPO version; bad input refused naming the field."""

import math

import pytest
import torch
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from margin.models import Job
from modelruntime.modelstore import load_policy
from rlhf import finetune_work, jobs
from rlhf.config import DPOConfig
from rlhf.dpo import PreferencePair, dpo_loss, dpo_train, pair_examples, pair_logprobs
from rlhf.models import PolicyVersion
from rlhf.sft import IGNORE
from tests.factories import ComparisonFactory, JudgmentFactory, ProjectFactory

PAIRS = [
    PreferencePair([{"role": "user", "content": "Say yes."}], "Yes.", "No way, never.", margin=1.0),
    PreferencePair([{"role": "user", "content": "Name a colour."}], "Blue.", "I refuse to answer that.", margin=0.0),
    PreferencePair([{"role": "user", "content": "Greet me."}], "Hello there!", "Go away.", margin=2 / 3),
]


def small_config(**changes):
    # 3 pairs x 4 epochs / 3 per step = 4 steps; lr high enough to move a random model in 4 steps.
    values = dict(learning_rate=5e-3, warmup_steps=0, epochs=4.0, batch_size=3, micro_batch_size=2,
                  max_length=64, weight_decay=0.0, checkpoint_every=1)
    return DPOConfig(**{**values, **changes})


def test_the_three_losses_equal_the_papers_formulas_by_hand():
    args = [torch.tensor([-1.0]), torch.tensor([-3.0]), torch.tensor([-2.0]), torch.tensor([-2.0])]
    # h = (-1 - -2) - (-3 - -2) = 2; beta h = 0.2
    sigmoid, chosen, rejected = dpo_loss(*args, beta=0.1)
    assert sigmoid.item() == pytest.approx(math.log(1 + math.exp(-0.2)))
    assert (chosen.item(), rejected.item()) == pytest.approx((0.1, -0.1))
    ipo, _, _ = dpo_loss(*args, beta=0.1, loss_type="ipo")
    assert ipo.item() == pytest.approx((2 - 1 / 0.2) ** 2)  # (h - 1/(2 beta))^2 = 9
    margin, _, _ = dpo_loss(*args, beta=0.1, loss_type="margin", margin=torch.tensor([1.0]), margin_scale=0.5)
    assert margin.item() == pytest.approx(math.log(1 + math.exp(-(0.2 - 0.5))))
    with pytest.raises(ValueError, match="unknown DPO loss"):
        dpo_loss(*args, beta=0.1, loss_type="kto")


def _alone(model, ids, labels) -> float:
    """Summed log-prob of one sequence's labelled tokens, by hand from its own full forward pass."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float()
    return sum(torch.log_softmax(logits[t - 1], -1)[ids[t]].item() for t, label in enumerate(labels)
               if label != IGNORE and t > 0)


def test_pair_logprobs_with_the_shared_prompt_equal_each_response_alone(tiny_lm):
    model, tokenizer = tiny_lm
    long_prompt = [{"role": "user", "content": "Tell me about the sea. " * 12}]
    pairs = PAIRS + [
        PreferencePair(long_prompt, "The sea is big.", "The sea is " + "very " * 30 + "small."),  # cut to 64
        PreferencePair(PAIRS[0].context, "Yes, sure.", "Yes, sure, whatever you say."),  # same first words
    ]
    examples = pair_examples(tokenizer, pairs, max_length=64)
    (chosen, rejected) = examples[3]
    assert len(rejected[0]) == 64 and chosen[0][:10] == rejected[0][:10]  # one prompt, cut once for both
    answer = [i for i, label in enumerate(examples[0][0][1]) if label != IGNORE]
    assert answer and answer[-1] == len(examples[0][0][0]) - 1  # the answer and its end-of-turn token
    with torch.no_grad():
        packed = pair_logprobs(model, examples, tokenizer.pad_token_id)  # (5, 2), one padded batch
    by_hand = torch.tensor([[_alone(model, *chosen), _alone(model, *rejected)] for chosen, rejected in examples])
    assert torch.allclose(packed, by_hand, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("lora_rank, loss_type", [(0, "sigmoid"), (4, "margin"), (0, "ipo")])
def test_dpo_steps_raise_the_chosen_implicit_reward_above_the_rejected(tiny_model_dir, lora_rank, loss_type):
    torch.manual_seed(0)  # LoRA's A matrices start random
    model, tokenizer = load_policy(tiny_model_dir, "cpu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained, result = dpo_train(small_config(loss_type=loss_type, learning_rate=1e-2 if lora_rank else 5e-3), model,
                                tokenizer, PAIRS, heldout=PAIRS, lora_rank=lora_rank)

    assert result.heldout_before["dpo/accuracy"] == 0.5  # untrained: every implicit reward is 0
    assert result.heldout_after["dpo/accuracy"] == 1.0 and result.heldout_after["dpo/reward_margin"] > 0
    assert result.heldout_after["ci95"] == [0.4385, 1.0]  # Wilson on 3 of 3: too few pairs to rule out chance
    assert result.losses[-1] < result.losses[0]
    assert "lora" not in " ".join(trained.state_dict())  # the adapter is merged into a plain model
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, before[k])]
    assert changed


def test_an_interrupted_dpo_run_resumes_to_the_same_weights(tiny_model_dir, tmp_path):
    torch.manual_seed(0)
    model, tokenizer = load_policy(tiny_model_dir, "cpu")
    whole, _ = dpo_train(small_config(), model, tokenizer, PAIRS)

    def stop_after_two(step, total, metrics):
        if step == 2:
            raise KeyboardInterrupt

    model, _ = load_policy(tiny_model_dir, "cpu")
    with pytest.raises(KeyboardInterrupt):
        dpo_train(small_config(), model, tokenizer, PAIRS, on_progress=stop_after_two, resume_dir=tmp_path)
    model, _ = load_policy(tiny_model_dir, "cpu")  # a new process: the initial weights again
    resumed, result = dpo_train(small_config(), model, tokenizer, PAIRS, resume_dir=tmp_path)

    assert result.resumed_from_step == 2 and len(result.losses) == result.steps == 4
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=name)


# --- the job ---------------------------------------------------------------------------------------

JOB = {"policy": "tiny", "project": "helpful", "preset": "cpu", "learning_rate": 1e-3, "batch_size": 4,
       "epochs": 1.0, "heldout_fraction": 0.3}


@pytest.fixture
def judged(tiny_policy, settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    project = ProjectFactory(name="helpful")
    for n in range(10):
        comparison = ComparisonFactory(batch__project=project, response_a__text=f"A kind answer {n}.",
                                       response_b__text=f"A rude answer {n}!")
        JudgmentFactory(comparison=comparison, choice="a", strength="significantly_better")
    return tiny_policy


@pytest.mark.django_db
def test_dpo_job_trains_on_judged_comparisons_into_a_dpo_version(judged):
    job = jobs.dpo_start(config=JOB)
    finetune_work.dpo_run_job(job_id=job.pk)
    job.refresh_from_db()

    assert job.state == Job.State.SUCCEEDED, job.error
    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert version.name == "DPO-V1" and version.kind == PolicyVersion.Kind.DPO
    assert version.parent == judged and version.job == job and version.config["loss_type"] == "sigmoid"
    assert version.data["pairs"] + version.data["heldout_pairs"] == 10 and version.data["heldout_pairs"] > 0
    assert version.metrics["heldout_before"]["dpo/accuracy"] == 0.5
    low, high = job.result["heldout_ci95"]  # what train_dpo prints, to judge "above chance"
    assert job.result["heldout_pairs"] == version.data["heldout_pairs"] and low <= job.result["heldout_accuracy"] <= high
    steps = math.ceil(version.data["pairs"] / 4)  # batch_size 4, one epoch
    assert f"step {steps}/{steps}: loss/dpo=" in job.log and job.progress_step == job.progress_total == steps


@pytest.mark.django_db
@pytest.mark.parametrize("config, field", [
    ({**JOB, "beta": -0.1}, "beta"),
    ({**JOB, "loss_type": "kto"}, "loss_type"),
    ({**JOB, "policy": "nope"}, "policy"),
    ({**JOB, "project": "nope"}, "project"),
    ({**JOB, "name": "tiny"}, "name"),
    ({**JOB, "heldout_fraction": 0.99999}, "project"),  # every prompt held out: nothing to train on
])
def test_bad_dpo_config_is_refused_naming_the_field(judged, config, field):
    with pytest.raises(ValidationError) as refused:
        jobs.dpo_start(config=config)
    assert field in refused.value.message_dict
    assert not Job.objects.exists()


@pytest.mark.django_db
def test_train_dpo_command_refuses_bad_input_with_a_clear_message(judged):
    with pytest.raises(CommandError, match="loss_type must be one of sigmoid, ipo, margin"):
        call_command("train_dpo", "--project", "helpful", "--loss-type", "kto")
    with pytest.raises(CommandError, match="no project named 'elsewhere'"):
        call_command("train_dpo", "--project", "elsewhere")


# --- iterative DPO -----------------------------------------------------------------------------------

ROUNDS = {"policy": "tiny", "project": "helpful", "helpfulness_rm": "tiny-helpful", "preset": "cpu", "rounds": 2,
          "k": 3, "max_new_tokens": 6, "max_prompts": 4, "heldout_fraction": 0.3, "learning_rate": 1e-3,
          "temperature": 1.5}


@pytest.fixture
def rm_world(judged, tiny_reward_model_path):
    from rewardmodel.models import RewardModel

    RewardModel.objects.create(name="tiny-helpful", objective="helpfulness", base_model="tiny",
                               checkpoint_path=str(tiny_reward_model_path))
    return judged


@pytest.mark.django_db
def test_iterative_dpo_makes_one_version_per_round_each_the_child_of_the_last(rm_world):
    job = jobs.dpo_iterative_start(config=ROUNDS)
    finetune_work.dpo_iterative_run(job_id=job.pk)
    job.refresh_from_db()

    assert job.state == Job.State.SUCCEEDED, job.error
    first, second = PolicyVersion.objects.get(name="DPO-V1-R1"), PolicyVersion.objects.get(name="DPO-V1-R2")
    assert first.parent == rm_world and second.parent == first and second.job == job
    assert second.kind == PolicyVersion.Kind.DPO and second.data["labelled_by"] == "reward model"
    assert second.data["round"] == 2 and second.metrics["round"]["pairs"] == second.data["pairs"] > 0
    assert [r["name"] for r in job.result["rounds"]] == ["DPO-V1-R1", "DPO-V1-R2"]


@pytest.mark.django_db
@pytest.mark.parametrize("config, field", [
    ({**ROUNDS, "k": 1}, "k"),
    ({**ROUNDS, "helpfulness_rm": ""}, "helpfulness_rm"),
    ({**ROUNDS, "helpfulness_rm": "no-such-rm"}, "helpfulness_rm"),
    ({**ROUNDS, "rounds": 0}, "rounds"),
])
def test_bad_iterative_dpo_config_is_refused_naming_the_field(rm_world, config, field):
    with pytest.raises(ValidationError) as refused:
        jobs.dpo_iterative_start(config=config)
    assert field in refused.value.message_dict
    assert not Job.objects.exists()
