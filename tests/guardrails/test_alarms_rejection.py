"""Reward-hacking alarms in rejection sampling, and each RM's own score in the PPO record."""

import pytest
from django.urls import reverse

from margin.models import Job
from rlhf.alarms import RewardHackingAlarmConfig, alarms_check, best_of_k_records, best_of_k_summary, rejection_alarm_record
from rlhf.models import PolicyVersion
from tests.factories import StaffFactory


def test_best_of_k_that_picks_by_length_trips_the_alarms_across_versions():
    """Toy reward = length: the best of K is the longest sample; the judge sees nothing better."""
    def run(pad):
        conversations = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "x" * (pad + j)}]
                         for i in range(10) for j in range(2)]  # 10 prompts x K=2
        scores = [len(c[-1]["content"]) / 10 for c in conversations]
        return best_of_k_records(conversations, scores, 2, lambda kept: {"reward/judge": 0.5})

    v1, v3 = run(9), run(39)
    # 10 prompts: a batch of 8 and one of 2; the kept samples are the K=2nd, 10 (then 40) characters.
    assert [r["prompts"] for r in v1] == [8, 2] and v1[0]["length"] == 10 and v1[0]["reward"] == 1.0
    series = [rejection_alarm_record(best_of_k_summary(v1), "RLHF-V1"),
              rejection_alarm_record(best_of_k_summary(v3), "RLHF-V3")]
    alarms = {a["alarm"]: a for a in alarms_check(series, RewardHackingAlarmConfig())}
    assert set(alarms) == {"length", "judge"}  # no KL in rejection sampling: that alarm stays off
    assert "grew 4.00x" in alarms["length"]["message"] and alarms["length"]["iteration"] == "RLHF-V3"
    assert alarms_check(series[:1] * 2, RewardHackingAlarmConfig()) == []


@pytest.fixture
def world(judged_world):
    tiny_policy = judged_world
    # An earlier rejection-sampling round whose kept samples were 1 character long, scored far
    # lower by the RM and far higher by the judge: this round looks like length-gaming beside it.
    tiny_policy.metrics = {"rs_summary": {"reward": -100.0, "length": 1.0, "reward/judge": 100.0}}
    tiny_policy.save()
    return tiny_policy


RS = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "alarm_judge_rm": "tiny-judge", "k": 2,
      "max_new_tokens": 4, "max_prompts": 4, "batch_size": 2, "micro_batch_size": 2, "max_length": 64,
      "epochs": 1.0, "heldout_fraction": 0.0}


@pytest.mark.django_db
def test_rejection_sampling_records_its_batches_and_stops_before_fine_tuning(world):
    from rlhf import jobs, work
    from rlhf.alarms import RewardHackingStopped

    job = jobs.rejection_sample_start(config={**RS, "alarm_action": "stop", "name": "RS-stop"})
    with pytest.raises(RewardHackingStopped):
        work.rejection_sample_run(job_id=job.pk)
    job.refresh_from_db()
    (batch,) = job.metrics["rs_batches"]  # 4 prompts: one batch
    assert batch["prompts"] == 4 and {"reward", "length", "reward/judge", "reward/helpfulness_rm"} <= set(batch)
    # The judge is the same tiny RM as the optimised one: it scores the kept samples alike.
    assert batch["reward/judge"] == pytest.approx(batch["reward/helpfulness_rm"], abs=1e-4)
    assert job.state == Job.State.FAILED and "stopped by the length alarm at iteration RS-stop" in job.error
    assert not PolicyVersion.objects.filter(name="RS-stop").exists()


@pytest.mark.django_db
def test_a_warned_rejection_sampling_version_carries_its_alarms_to_the_guardrails_page(world, client):
    from rlhf import jobs, work

    job = jobs.rejection_sample_start(config={**RS, "name": "RS-warn"})
    work.rejection_sample_run(job_id=job.pk)
    version = PolicyVersion.objects.get(name="RS-warn")
    assert {a["alarm"] for a in version.metrics["alarms"]} == {"length", "judge"}
    assert version.metrics["rs_summary"]["length"] > 1.5 and "REWARD-HACKING ALARM (length)" in Job.objects.get(pk=job.pk).log
    client.force_login(StaffFactory(username="boss"))
    html = client.get(reverse("dashboard:guardrails")).content.decode()
    assert html.count('data-testid="version-alarm"') == 2 and 'data-version="RS-warn"' in html


@pytest.mark.django_db
def test_the_ppo_record_carries_each_reward_model_s_own_score(world):
    from rlhf import jobs, work

    config = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "iterations": 1, "batch_size": 2,
              "minibatch_size": 2, "max_new_tokens": 4, "max_prompts": 2, "name": "PPO-own"}
    work.ppo_run(job_id=jobs.ppo_start(config=config).pk)
    (record,) = PolicyVersion.objects.get(name="PPO-own").metrics["ppo_iterations"]
    # One RM: the combined reward is logit(sigmoid(score)), the RM's own score itself.
    assert record["reward/helpfulness_rm"] == pytest.approx(record["reward/score"], abs=1e-3)
    assert "alarm/response_chars" in record
