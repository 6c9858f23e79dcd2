"""Policy jobs end to end on the tiny models and the real database: rejection sampling and PPO
make child versions with lineage, data and metrics; evaluation stores a win rate; publishing
sends two versions' answers to annotators; bad configs are refused before anything is created."""

import pytest
from django.core.exceptions import ValidationError

from annotation.models import Comparison, Project
from margin.models import Job
from rlhf import jobs, work
from rlhf.models import PolicyVersion
from tests.factories import BatchFactory

RS = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "k": 2, "max_new_tokens": 4, "batch_size": 4,
      "micro_batch_size": 2, "max_length": 256, "epochs": 1.0, "max_prompts": 4, "learning_rate": 1e-3}
PPO = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "safety_rm": "tiny-safety", "iterations": 2,
       "batch_size": 4, "minibatch_size": 2, "max_new_tokens": 4, "max_prompts": 4, "learning_rate": 1e-3}


@pytest.fixture(autouse=True)
def _model_store(settings, tmp_path):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"


@pytest.fixture
def world(policy_world):
    BatchFactory(project=Project.objects.get(name="helpful"))
    return policy_world


def run(job, run_fn):
    run_fn(job_id=job.pk)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error
    return job


@pytest.mark.parametrize("start, config, field", [
    (jobs.rejection_sample_start, {**RS, "k": 0}, "k"),
    (jobs.rejection_sample_start, {**RS, "temprature": 1.0}, "temprature"),
    (jobs.rejection_sample_start, {**RS, "k": "four"}, "k"),
    (jobs.rejection_sample_start, {**RS, "policy": "nope"}, "policy"),
    (jobs.rejection_sample_start, {**RS, "helpfulness_rm": "missing-rm"}, "helpfulness_rm"),
    (jobs.rejection_sample_start, {**RS, "helpfulness_rm": ""}, "helpfulness_rm"),
    (jobs.rejection_sample_start, {**RS, "project": "nope"}, "project"),
    (jobs.rejection_sample_start, {**RS, "name": "tiny"}, "name"),
    (jobs.rejection_sample_start, {**RS, "name": "bad name!"}, "name"),
    (jobs.ppo_start, {**PPO, "clip_range": -0.2}, "clip_range"),
    (jobs.ppo_start, {**PPO, "minibatch_size": 3}, "minibatch_size"),
    (jobs.ppo_start, {**PPO, "batch_size": 1, "minibatch_size": 1}, "batch_size"),
    (jobs.policy_evaluate_start, {"policy": "tiny", "helpfulness_rm": "tiny-helpful"}, "against"),
    (jobs.policy_evaluate_start, {"policy": "tiny", "against": "tiny", "helpfulness_rm": "tiny-helpful",
                                      "heldout_fraction": 0.0}, "project"),
    (jobs.samples_publish_start, {"project": "helpful", "policy_a": "tiny", "temperature_b": 0.7}, "temperature_b"),
    (jobs.samples_publish_start, {"project": "safety"}, "project"),  # no open batch
    (jobs.samples_publish_start, {"project": ""}, "project"),
])
def test_bad_config_is_refused_naming_the_field_and_nothing_is_created(world, start, config, field):
    with pytest.raises(ValidationError) as refused:
        start(config=config)

    assert field in refused.value.message_dict
    assert Job.objects.count() == 0 and PolicyVersion.objects.count() == 1


def test_rejection_sampling_job_makes_a_child_version_with_its_curve_and_data(world):
    job = run(jobs.rejection_sample_start(config=RS), work.rejection_sample_run)

    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert version.name == "RLHF-V1" and version.parent == world and version.job == job
    assert version.kind == PolicyVersion.Kind.REJECTION_SAMPLING
    assert [(p["temperature"], p["k"]) for p in version.metrics["reward_vs_k"]] == [(1.2, 1), (1.2, 2)]
    assert job.metrics["reward_vs_k"] == version.metrics["reward_vs_k"]
    assert version.data["prompts"] == 4 and version.data["kept_samples"] == 4
    assert version.config["k"] == 2

    # The next iteration starts from the newest version and pools the first one's winners.
    second = run(jobs.rejection_sample_start(config={**RS, "policy": "RLHF-V1"}), work.rejection_sample_run)
    child = PolicyVersion.objects.get(pk=second.result["policy_version_id"])
    assert child.name == "RLHF-V2" and child.lineage() == [child, version, world]
    assert child.data["kept_samples"] == 4  # same prompts: one winner each, from either iteration


def test_ppo_job_logs_every_iteration_on_the_job_and_the_version(world):
    job = run(jobs.ppo_start(config=PPO), work.ppo_run)

    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    iterations = version.metrics["ppo_iterations"]
    assert [r["iteration"] for r in iterations] == [1, 2]
    assert {"reward/score", "kl/reference_k1", "loss/value", "ppo/entropy", "ppo/response_length"} <= set(iterations[0])
    assert job.metrics["ppo_iterations"] == iterations
    assert "iteration 2/2" in job.log
    assert version.kind == PolicyVersion.Kind.PPO and version.parent == world
    assert version.data["safety_prompts"] > 0  # the safety project's prompts took R_s


def test_evaluation_stores_the_rm_judged_win_rate_against_the_parent(world):
    child = PolicyVersion.objects.create(name="child", parent=world, checkpoint_path=world.checkpoint_path)
    config = {"policy": "child", "helpfulness_rm": "tiny-helpful", "max_new_tokens": 4, "heldout_fraction": 0.5}

    job = run(jobs.policy_evaluate_start(config=config), work.policy_evaluate_run)

    child.refresh_from_db()
    win_rate = child.metrics["win_rate"]
    assert win_rate["against"] == "tiny" and win_rate["prompts"] >= 1
    # Same weights and the same seed give the same answers: every prompt is a tie.
    assert win_rate["win_rate"] == 0.5
    assert job.result["win_rate"] == 0.5


def test_publishing_sends_two_versions_answers_to_the_open_batch_once(world):
    other = PolicyVersion.objects.create(name="other", parent=world, checkpoint_path=world.checkpoint_path)
    config = {"project": "helpful", "policy_a": "tiny", "policy_b": "other", "max_new_tokens": 4, "max_prompts": 3}

    job = run(jobs.samples_publish_start(config=config), work.samples_publish_run)

    comparisons = Comparison.objects.filter(batch__project__name="helpful")
    assert job.result["comparisons"] == comparisons.count() == 3
    for comparison in comparisons:
        assert {comparison.response_a.policy_version, comparison.response_b.policy_version} == {world, other}
        assert comparison.response_a.sampling["temperature"] == 0.7
        assert comparison.response_b.sampling["temperature"] == 1.0
    again = run(jobs.samples_publish_start(config={**config, "max_prompts": 32}), work.samples_publish_run)
    assert again.result["comparisons"] == 5  # the 8 helpful prompts, none of the 3 twice


def test_default_names_number_each_family_of_versions_on_its_own(world):
    # A DPO or SFT version is not an RLHF round: the next PPO job is still RLHF-V1, and the next
    # DPO job skips the name a queued DPO job already holds.
    PolicyVersion.objects.create(name="DPO-V1", kind=PolicyVersion.Kind.DPO, checkpoint_path="/x", parent=world)
    PolicyVersion.objects.create(name="SFT-V1", kind=PolicyVersion.Kind.SFT, checkpoint_path="/y", parent=world)
    assert jobs.ppo_start(config=PPO).params["config"]["name"] == "RLHF-V1"
    assert jobs.rejection_sample_start(config=RS).params["config"]["name"] == "RLHF-V2"  # V1 is being made
    Job.objects.create(kind=Job.Kind.DPO, params={"config": {"name": "DPO-V2"}})
    from rlhf.config import DPOJobConfig

    assert jobs._version_name_reserve(DPOJobConfig(), Job.Kind.DPO) == "DPO-V3"
