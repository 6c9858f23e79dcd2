"""The OpenRLHF hand-off without a GPU: the command it builds passes OpenRLHF's own parser and
checks with our PPO config in it, the prompt dataset reads back through OpenRLHF's reader, the run
goes to a real local Ray head (a stand-in entry point writes the checkpoint where OpenRLHF would)
and comes back as a policy version; bad input is refused naming the flag."""

import json
import math
import os
import shlex
import shutil

import pytest
from django.core.management import CommandError, call_command

from margin.celery import app
from margin.jobs import job_cancel_request
from margin.models import Job
from modelruntime.modelstore import checkpoint_is_complete, load_policy
from modelruntime.raylaunch import ray_client
from rlhf import handoff
from rlhf.models import PolicyVersion
from rlhf.reward_server import SAFETY_LABEL
from tests.ray.conftest import free_port
from tests.ray.openrlhf_source import ppo_ray_args, prompt_dataset
from tests.real_services import wait_until

CONFIG = {"policy": "tiny", "helpfulness_rm": "tiny-helpful", "safety_rm": "tiny-safety", "project": "",
          "max_prompts": 8}
REWARD_URL = "http://margin-rm:5000/get_reward"


@pytest.fixture
def world(settings, tmp_path, policy_world):
    settings.MARGIN_MODEL_STORE = tmp_path / "models"
    return policy_world


def openrlhf_args(params):
    assert params["argv"][:3] == ["python", "-m", "openrlhf.cli.train_ppo_ray"]
    return ppo_ray_args(params["argv"][3:])


def test_openrlhfs_own_parser_takes_the_command_with_llama2s_ppo_settings(world, tmp_path):
    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, output=str(tmp_path / "out"))

    args = openrlhf_args(params)
    assert args.actor.model_name_or_path == str(world.checkpoint_path)
    assert args.reward.remote_url == [REWARD_URL]  # Margin's reward server, so the safety gate applies
    assert args.critic.model_name_or_path == args.actor.model_name_or_path  # OpenRLHF's rule with a remote RM
    # Llama 2 sec. 3.2.3 through rlhf/config.py's PPOConfig defaults.
    assert args.algo.kl.init_coef == 0.01 and args.actor.eps_clip_low_high == (0.2, 0.2)
    assert (args.rollout.batch_size, args.train.batch_size, args.train.max_epochs) == (512, 64, 1)
    assert args.actor.adam.lr == 1e-6 and args.actor.adam.betas == [0.9, 0.95] and args.actor.adam.eps == 1e-5
    assert args.actor.adam.weight_decay == 0.1 and args.actor.max_norm == 1.0
    assert args.actor.lr_scheduler == "constant"
    assert args.ckpt.output_dir == str(tmp_path / "out" / "model")
    prompts = params["data"]["prompts"]  # the training part of the factories' prompts, at most 8
    assert 0 < prompts <= 8 and args.data.max_samples == prompts
    assert args.train.num_episodes == math.ceil(200 * 512 / prompts)  # 200 iterations x 512 rollouts


def test_config_changes_reach_openrlhf_and_its_parser_rejects_what_it_does_not_know(world, tmp_path):
    config = {**CONFIG, "kl_beta": 0.005, "learning_rate": 5e-7, "batch_size": 64, "minibatch_size": 16,
              "lora_rank": 8, "gpus_per_node": 2, "zero_stage": 3}
    params = handoff.rl_handoff_prepare(config=config, reward_url=REWARD_URL, output=str(tmp_path))

    args = openrlhf_args(params)
    assert (args.algo.kl.init_coef, args.actor.adam.lr) == (0.005, 5e-7)
    assert (args.rollout.batch_size, args.train.batch_size) == (64, 16)
    assert (args.ds.lora.rank, args.ds.lora.alpha, args.ds.zero_stage) == (8, 16, 3)
    assert (args.actor.num_gpus_per_node, args.vllm.num_engines) == (2, 2)
    with pytest.raises(SystemExit):  # the flag older OpenRLHF releases took: this parser refuses it
        ppo_ray_args([*params["argv"][3:], "--init_kl_coef", "0.01"])


def test_openrlhfs_reader_sees_each_prompt_in_the_chat_template_with_its_safety_label(world, tmp_path):
    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, output=str(tmp_path))
    policy, tokenizer = load_policy(world.checkpoint_path)
    rows = [json.loads(line) for line in open(params["dataset"])]

    prompts = prompt_dataset(openrlhf_args(params), tokenizer)

    assert len(prompts) == len(rows) == params["data"]["prompts"] > 0
    for (_, prompt, label, _), row in zip(prompts, rows):
        assert prompt == tokenizer.apply_chat_template(row["input"], tokenize=False, add_generation_prompt=True)
        assert row["input"][0]["role"] == "user" and row["input"][0]["content"] in prompt
        assert label == row["label"]
    assert {label for _, _, label, _ in prompts} == {SAFETY_LABEL, "helpfulness"}


def test_the_command_prints_the_reward_server_and_openrlhf_commands(world, tmp_path, capsys):
    call_command("rl_handoff", "--engine", "openrlhf", "--policy", "tiny", "--helpfulness-rm", "tiny-helpful",
                 "--safety-rm", "tiny-safety", "--reward-url", REWARD_URL, "--output", str(tmp_path),
                 "--kl-beta", "0.005")

    out = capsys.readouterr().out
    assert "python manage.py serve_rewards --helpfulness-rm tiny-helpful --safety-rm tiny-safety --host 0.0.0.0 --port 5000" in out
    command = next(line for line in out.splitlines() if "openrlhf.cli.train_ppo_ray" in line)
    assert openrlhf_args({"argv": shlex.split(command)}).algo.kl.init_coef == 0.005
    assert Job.objects.count() == 0  # no Ray address: nothing submitted


@pytest.mark.parametrize("flags, message", [
    (["--policy", "nope"], "--policy: no policy version named 'nope'"),
    (["--helpfulness-rm", "missing-rm"], "--helpfulness-rm:"),
    (["--safety-rm", "/no/such/rm"], "--safety-rm:"),
    (["--project", "nope"], "--project: no project named 'nope'"),
    (["--reward-url", "margin-rm:5000"], "--reward-url: 'margin-rm:5000' is not an http(s) URL"),
    (["--ray-address", "UNREACHABLE"], "--ray-address: no Ray cluster answers at http://127.0.0.1:"),
    (["--kl-beta", "-1"], "--kl-beta:"),
    (["--processes", "2"], "--processes: OpenRLHF places its own processes"),
    (["--engine", "trl"], "invalid choice: 'trl'"),
])
def test_bad_input_is_refused_naming_the_flag(world, tmp_path, flags, message):
    flags = [f"127.0.0.1:{free_port()}" if flag == "UNREACHABLE" else flag for flag in flags]
    base = {"--engine": "openrlhf", "--policy": "tiny", "--helpfulness-rm": "tiny-helpful",
            "--safety-rm": "tiny-safety", "--output": str(tmp_path / "out")}
    base.update(zip(flags[::2], flags[1::2]))

    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("rl_handoff", *[part for pair in base.items() for part in pair])
    assert not (tmp_path / "out").exists() and Job.objects.count() == 0
    assert PolicyVersion.objects.count() == 1


def test_queue_without_a_ray_address_is_refused(world, tmp_path):
    with pytest.raises(CommandError, match="--queue: .* give --ray-address too"):
        call_command("rl_handoff", "--engine", "openrlhf", "--policy", "tiny", "--helpfulness-rm", "tiny-helpful",
                     "--queue", "--output", str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() and Job.objects.count() == 0


def test_a_run_on_ray_comes_back_as_a_policy_version_with_lineage(world, ray_head, tmp_path):
    params = handoff.rl_handoff_prepare(config={**CONFIG, "kl_beta": 0.005}, reward_url=REWARD_URL,
                                        ray_address=ray_head.address)
    params["argv"][2] = "tests.ray.standin_openrlhf"  # OpenRLHF's place on the cluster, same arguments
    job = handoff.rl_handoff_start(params=params)

    handoff.rl_handoff_run(job_id=job.pk)

    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED, job.error + job.log
    prompts = params["data"]["prompts"]
    assert f"stand-in: {prompts} prompts" in job.log and f"reward from ['{REWARD_URL}']" in job.log, job.log
    version = PolicyVersion.objects.get(pk=job.result["policy_version_id"])
    assert (version.kind, version.parent, version.job, version.name) == (
        PolicyVersion.Kind.EXTERNAL, world, job, "RLHF-V1")
    assert version.config["kl_beta"] == 0.005 and version.data["prompts"] == prompts
    assert version.data["ray_job_id"] == job.result["ray_job_id"] == job.metrics["ray_job_id"]
    assert checkpoint_is_complete(version.checkpoint_path)
    policy, _ = load_policy(version.checkpoint_path)  # the store's loader takes the imported weights
    assert not os.listdir(params["model_dir"])  # moved into the store, not copied


@pytest.mark.django_db(transaction=True)
def test_cancel_on_the_dashboard_stops_the_ray_run_of_a_default_queue_worker(world, ray_head, start_worker):
    assert app.amqp.router.route({}, "rlhf.tasks.rl_handoff_task")["queue"].name == "default"
    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, ray_address=ray_head.address)
    params["argv"] = ["sleep", "300"]  # a run that goes on until stopped
    start_worker(queues="default")
    job = handoff.rl_handoff_start(params=params)
    wait_until(lambda: Job.objects.get(pk=job.pk).metrics.get("ray_job_id"), 60, "the worker to submit the run")
    ray_job_id = Job.objects.get(pk=job.pk).metrics["ray_job_id"]

    job_cancel_request(job=job)

    wait_until(lambda: Job.objects.get(pk=job.pk).state == Job.State.CANCELLED, 60, "the job to be cancelled")
    assert ray_client(ray_head.address).get_job_status(ray_job_id).value == "STOPPED"
    assert PolicyVersion.objects.count() == 1


def test_a_ppo_job_started_during_a_handoff_gets_another_version_name(world, tmp_path):
    from rlhf.jobs import ppo_params

    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, output=str(tmp_path))
    handoff.rl_handoff_start(params={**params, "ray_address": "http://ray-head:8265"})

    assert params["config"]["name"] == "RLHF-V1"
    assert ppo_params({**CONFIG})["config"]["name"] == "RLHF-V2"


def test_a_cancel_that_lands_right_after_submission_still_stops_the_ray_run(world, ray_head, tmp_path):
    from margin.jobs import JobCancelled

    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, ray_address=ray_head.address,
                                        output=str(tmp_path / "this-test"))
    job = Job.objects.create(kind=Job.Kind.RL_HANDOFF, params={**params, "argv": ["sleep", "300"]})

    def cancelled(step, total, metrics=None, log_line=None):
        raise JobCancelled("staff pressed cancel")

    with pytest.raises(JobCancelled):
        handoff.rl_handoff_work(job, cancelled)

    client = ray_client(ray_head.address)
    (run,) = [info for info in client.list_jobs() if str(tmp_path / "this-test") in info.entrypoint]
    assert client.get_job_status(run.submission_id).value == "STOPPED"


def test_a_failed_openrlhf_run_fails_the_command_naming_the_ray_job_and_its_last_lines(world, ray_head, tmp_path):
    # The real entry point on this cluster, which lacks OpenRLHF's GPU stack: it dies on import.
    with pytest.raises(CommandError) as failed:
        call_command("rl_handoff", "--engine", "openrlhf", "--policy", "tiny", "--helpfulness-rm", "tiny-helpful",
                     "--safety-rm", "tiny-safety", "--reward-url", REWARD_URL, "--output", str(tmp_path),
                     "--ray-address", ray_head.address)

    message = str(failed.value)
    job = Job.objects.get()
    assert message.startswith(f"job {job.pk} failed: RayError: Ray job raysubmit_")
    assert "ModuleNotFoundError: No module named" in message  # the run's own last log lines
    assert job.state == Job.State.FAILED and job.metrics["ray_job_id"] in message
    assert PolicyVersion.objects.count() == 1


def test_a_run_started_by_hand_is_imported_from_its_plan(world, tmp_path):
    params = handoff.rl_handoff_prepare(config=CONFIG, reward_url=REWARD_URL, output=str(tmp_path))
    plan = str(tmp_path / handoff.PLAN_NAME)
    with pytest.raises(CommandError, match="failed: ValueError: .*/model holds no Hugging Face checkpoint"):
        call_command("rl_handoff", "--engine", "openrlhf", "--import-plan", plan)  # OpenRLHF has not saved yet
    shutil.copytree(world.checkpoint_path, params["model_dir"], ignore=shutil.ignore_patterns("margin.json"))

    call_command("rl_handoff", "--engine", "openrlhf", "--import-plan", plan)

    version = PolicyVersion.objects.get(name=params["config"]["name"])
    assert (version.kind, version.parent) == (PolicyVersion.Kind.EXTERNAL, world)
    assert checkpoint_is_complete(version.checkpoint_path)
    with pytest.raises(CommandError, match=f"--import-plan: a policy version named '{version.name}' exists"):
        call_command("rl_handoff", "--engine", "openrlhf", "--import-plan", plan)
    with pytest.raises(CommandError, match="--import-plan: .*nowhere.json is not a hand-off plan"):
        call_command("rl_handoff", "--engine", "openrlhf", "--import-plan", str(tmp_path / "nowhere.json"))
