"""Reward-hacking alarms: a crafted run that games a toy reward trips them; a healthy one does not."""

import pytest

from modelruntime.config import ConfigError
from rlhf.alarms import JudgedReward, RewardHackingAlarmConfig, RewardHackingStopped, alarms_check
from rlhf.config import PPOConfig


def toy_reward(conversations):
    """A reward a policy can game: longer answers score higher, whatever they say."""
    return [len(c[-1]["content"]) / 10 for c in conversations]


class ConstantJudge:
    """A held-out judge that sees no improvement in padding."""

    def score(self, conversations, batch_size=8):
        return [0.5] * len(conversations)


def gaming_run(iterations=4):
    """Each iteration the policy pads its answers a little more; the toy reward follows length,
    the judge stays flat; KL grows as the policy drifts."""
    judged = JudgedReward(toy_reward, ConstantJudge())
    records = []
    for i in range(iterations):
        answers = [[{"role": "user", "content": "q"}, {"role": "assistant", "content": "ok " * (5 + 5 * i)}]] * 2
        scores = judged(answers)
        records.append({"iteration": i + 1, "reward": sum(scores) / len(scores), "kl": 2.0 + 8 * i,
                        "length": judged.last["alarm/response_chars"], "judge": judged.last["reward/judge"]})
    return records


def test_a_run_that_games_a_toy_reward_trips_every_alarm():
    records = gaming_run()
    # Length 15 -> 60 characters (4x); reward 1.5 -> 6.0 (+4.5); judge 0.5 -> 0.5; KL 26 at the end.
    assert records[0]["length"] == 15 and records[-1]["length"] == 60 and records[-1]["reward"] == 6.0
    alarms = {a["alarm"]: a for a in alarms_check(records, RewardHackingAlarmConfig())}
    assert set(alarms) == {"length", "kl", "judge"}
    assert "grew 4.00x" in alarms["length"]["message"] and alarms["length"]["iteration"] == 4
    assert "26 nats, past the bound 20" in alarms["kl"]["message"]
    assert "gained 4.5 but the held-out judge 0" in alarms["judge"]["message"]


def test_a_healthy_run_raises_nothing_and_bounds_can_be_turned_off():
    healthy = [{"iteration": i, "reward": 0.1 * i, "kl": 1.0 + i, "length": 40 + i, "judge": 0.1 * i}
               for i in range(1, 5)]
    assert alarms_check(healthy, RewardHackingAlarmConfig()) == []
    assert alarms_check(gaming_run()[:1], RewardHackingAlarmConfig()) == []  # one iteration: no trend yet
    off = RewardHackingAlarmConfig(alarm_length_ratio=0, alarm_kl_bound=0, alarm_judge_divergence=0)
    assert alarms_check(gaming_run(), off) == []
    # Length growing while the reward falls is not reward hacking.
    falling = [{**r, "reward": -r["reward"]} for r in gaming_run()]
    assert "length" not in {a["alarm"] for a in alarms_check(falling, RewardHackingAlarmConfig())}


@pytest.mark.parametrize("values, field", [({"alarm_action": "panic"}, "alarm_action"),
                                           ({"alarm_kl_bound": -1}, "alarm_kl_bound")])
def test_bad_alarm_settings_are_refused_naming_the_field(values, field):
    with pytest.raises(ConfigError) as refused:
        PPOConfig.from_dict(values)
    assert refused.value.field == field


@pytest.mark.django_db
def test_the_ppo_job_records_the_judge_and_stops_on_an_alarm(judged_world):
    from margin.models import Job
    from rlhf import jobs, work

    # A large step moves the policy far from the reference, so the sampled KL (a k1 estimate, which
    # can dip below zero on a few tokens) clears the tiny bound by iteration 2 or 3 whatever the order.
    config = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "iterations": 4, "batch_size": 4,
              "minibatch_size": 2, "max_new_tokens": 8, "max_prompts": 4, "learning_rate": 1e-2,
              "alarm_judge_rm": "tiny-judge", "alarm_kl_bound": 1e-6, "alarm_action": "stop"}
    job = jobs.ppo_start(config=config)
    with pytest.raises(RewardHackingStopped):
        work.ppo_run(job_id=job.pk)
    job.refresh_from_db()
    # The judge is the same tiny RM: its score equals the optimised one, so only KL can fire.
    first = job.metrics["ppo_iterations"][0]
    assert first["reward/judge"] == pytest.approx(first["reward/score"], abs=1e-4)
    assert "alarm/response_chars" in first
    assert job.state == Job.State.FAILED and "stopped by the kl alarm" in job.error
    assert "REWARD-HACKING ALARM (kl)" in job.log and job.metrics["alarms"][0]["alarm"] == "kl"


@pytest.mark.django_db
def test_the_job_page_shows_the_alarms(client):
    from django.urls import reverse

    from margin.models import Job
    from tests.factories import StaffFactory

    alarm = {"alarm": "length", "iteration": 3, "message": "reward rose by 4.5 while mean response length grew 4.00x"}
    job = Job.objects.create(kind=Job.Kind.PPO, state=Job.State.RUNNING, metrics={"alarms": [alarm], "step": 3})
    client.force_login(StaffFactory(username="boss"))
    html = client.get(reverse("dashboard:job", args=[job.pk])).content.decode()
    assert 'data-testid="job-alarms"' in html and "Reward-hacking alarm (length, iteration 3): reward rose by 4.5" in html
