"""The OpenRLHF hand-off (issue 19): PPO too large for Margin's in-process trainer runs on OpenRLHF
(Ray + vLLM + DeepSpeed), scored by Margin's reward server so Llama 2's safety gate applies.

    rl_handoff_prepare  validates, writes the prompt dataset, and builds the two commands:
                        `manage.py serve_rewards ...` (run first) and
                        `python -m openrlhf.cli.train_ppo_ray ...` (the PPO config mapped)
    rl_handoff_start    queues the run for a default-queue worker (Job.Kind.RL_HANDOFF)
    rl_handoff_work     submits the command as a Ray job, follows it on the job row, stops it on
                        cancel, and imports the checkpoint it writes as a new policy version
    rl_handoff_import_* the same import for a run started by hand from the printed command

The argument names and the dataset keys are OpenRLHF 0.11.2's (openrlhf/cli/train_ppo_ray.py, its
dotted `--group.name` flags; openrlhf/datasets/prompts_dataset.py reads `input_key` and
`label_key`); tests/ray checks both against that version's own parser and reader.

The output folder (the model store's policies/<name>/openrlhf unless --output):
    prompts.jsonl  {"input": [chat messages], "label": "safety" | "helpfulness"}; OpenRLHF applies
                   the policy's chat template and sends the label to the reward server, which
                   takes the safety RM's score on a safety prompt (rlhf/reward_server.py)
    handoff.json   the commands, the config, the prompts' counts
    model/         where OpenRLHF saves the final Hugging Face checkpoint (--ckpt.output_dir)
    ckpt/          its DeepSpeed states (--ckpt.path), so a resubmitted run resumes
The imported version's weights move into the store's policies/<name>/policy.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from django.core.exceptions import ValidationError

from margin.jobs import JobCancelled, job_create, job_run
from margin.models import Job
from modelruntime.config import ConfigError, config_field
from rlhf.config import PPOConfig
from rlhf.models import PolicyVersion

ENGINE = "openrlhf"
OPENRLHF_VERSION = "0.11.2"
OPENRLHF_ENTRY = "openrlhf.cli.train_ppo_ray"
DATASET_NAME = "prompts.jsonl"
PLAN_NAME = "handoff.json"
MODEL_DIR = "model"
DEEPSPEED_DIR = "ckpt"
INPUT_KEY, LABEL_KEY = "input", "label"
REWARD_PORT = 5000  # serve_rewards' default
POLL_SECONDS = 2.0
LOG_LINES_PER_POLL = 50  # OpenRLHF's progress bars print thousands of lines; the row keeps a sample


@dataclass
class OpenRLHFConfig(PPOConfig):
    """PPOConfig's hyperparameters (Llama 2's, mapped in openrlhf_argv) plus the cluster's shape."""

    nodes: int = config_field(1, "Nodes OpenRLHF's actor, critic, reference and vLLM engines span.", gt=0)
    gpus_per_node: int = config_field(8, "GPUs per node; every model is colocated on all of them (OpenRLHF's hybrid engine).", gt=0)
    # ZeRO-2 shards gradients and optimizer states; ZeRO-3 also the weights (needed from ~13B on
    # 80 GB GPUs with full fine-tuning, docs/scaling.md).
    zero_stage: int = config_field(2, "DeepSpeed ZeRO stage (3 shards the weights too).", ge=0, le=3)

    def check(self):
        super().check()
        if self.processes != 1 or self.rdzv_endpoint:  # PPOConfig's torchrun fields: Margin's own trainer only
            raise ConfigError("processes", "OpenRLHF places its own processes: give nodes and gpus_per_node instead")
        if self.lora_rank and self.lora_alpha != int(self.lora_alpha):
            raise ConfigError("lora_alpha", f"OpenRLHF takes a whole number, not {self.lora_alpha}")


def openrlhf_argv(config: OpenRLHFConfig, *, pretrain: str, dataset: Path, output_dir: Path, reward_url: str,
                  prompts: int, python: str = "python") -> list[str]:
    """The `python -m openrlhf.cli.train_ppo_ray` command for `config` (OpenRLHF 0.11.2's flags)."""
    # Llama 2 runs `iterations` PPO iterations of `batch_size` rollouts; OpenRLHF makes
    # len(dataset) / rollout.batch_size rollout batches per episode, so episodes cover them.
    episodes = max(1, math.ceil(config.iterations * config.batch_size / max(prompts, 1)))
    gpus = config.nodes * config.gpus_per_node
    argv = [
        python, "-m", OPENRLHF_ENTRY,
        "--actor.model_name_or_path", pretrain,
        "--reward.remote_url", reward_url,  # Margin's serve_rewards: Llama 2's combined reward and gate
        "--data.prompt_dataset", str(dataset),
        "--data.input_key", INPUT_KEY, "--data.label_key", LABEL_KEY, "--data.apply_chat_template",
        "--ckpt.output_dir", str(output_dir / MODEL_DIR),
        "--ckpt.path", str(output_dir / DEEPSPEED_DIR), "--ckpt.load_enable",
        "--ckpt.save_steps", str(config.checkpoint_every),
        # The cluster: every model on every GPU, vLLM sleeping while DeepSpeed trains.
        "--actor.num_nodes", str(config.nodes), "--actor.num_gpus_per_node", str(config.gpus_per_node),
        "--critic.num_nodes", str(config.nodes), "--critic.num_gpus_per_node", str(config.gpus_per_node),
        "--ref.num_nodes", str(config.nodes), "--ref.num_gpus_per_node", str(config.gpus_per_node),
        "--vllm.num_engines", str(gpus), "--vllm.tensor_parallel_size", "1",
        "--train.colocate_all", "--vllm.enable_sleep", "--ds.enable_sleep",
        "--ds.zero_stage", str(config.zero_stage), "--ds.param_dtype", "bf16",
        "--ds.attn_implementation", "sdpa",  # flash-attn is not on every cluster; no packing here
        # Llama 2 sec. 3.2.3: batch 512 rollouts, minibatch 64 with one gradient step each, clip 0.2.
        "--rollout.batch_size", str(config.batch_size), "--rollout.n_samples_per_prompt", "1",
        "--rollout.vllm_generate_batch_size", str(min(config.generation_batch_size, config.batch_size)),
        "--train.batch_size", str(config.minibatch_size), "--train.max_epochs", "1",
        "--train.num_episodes", str(episodes), "--train.seed", str(config.seed),
        "--data.max_samples", str(prompts),
        "--rollout.temperature", str(config.temperature), "--rollout.max_new_tokens", str(config.max_new_tokens),
        "--actor.eps_clip", str(config.clip_range), "--critic.value_clip", str(config.value_clip),
        # Per-token KL penalty in the reward (k1), beta fixed: Llama 2's 0.01 / 0.005.
        "--algo.kl.init_coef", str(config.kl_beta), "--algo.kl.estimator", "k1",
        "--algo.advantage.estimator", "gae",
        "--algo.advantage.gamma", str(config.gamma), "--algo.advantage.lambd", str(config.gae_lambda),
        # AdamW as in Llama 2 sec. 2.2, constant lr 1e-6 (sec. 3.2.3). The critic keeps OpenRLHF's
        # own lr (9e-6): Margin's value head has no lr of its own (value_coef has no equivalent).
        "--actor.adam.lr", str(config.learning_rate),
        "--actor.adam.betas", str(config.adam_beta1), str(config.adam_beta2),
        "--actor.adam.eps", str(config.adam_eps), "--actor.adam.weight_decay", str(config.weight_decay),
        "--actor.max_norm", str(config.max_grad_norm),
        "--actor.lr_scheduler", "constant", "--actor.lr_warmup_ratio", "0",
    ]
    if config.whiten_rewards:  # Llama 2 whitens the scores; OpenRLHF's running normalisation
        argv.append("--reward.normalize_enable")
    if config.lora_rank:
        argv += ["--ds.lora.rank", str(config.lora_rank), "--ds.lora.alpha", str(int(config.lora_alpha))]
    return argv


def serve_rewards_command(config: OpenRLHFConfig, reward_url: str) -> list[str]:
    port = urlparse(reward_url).port or REWARD_PORT
    command = ["python", "manage.py", "serve_rewards"]
    if config.helpfulness_rm:
        command += ["--helpfulness-rm", config.helpfulness_rm]
    if config.safety_rm:
        command += ["--safety-rm", config.safety_rm]
    return [*command, "--host", "0.0.0.0", "--port", str(port)]


def reward_url_default() -> str:
    return f"http://{socket.getfqdn()}:{REWARD_PORT}/get_reward"


def rl_handoff_prepare(*, config: dict, reward_url: str = "", output: str = "", ray_address: str = "") -> dict:
    """Validate, write the dataset and the plan; the job's params. ValidationError({field: message})
    names a bad policy, reward model, project, reward URL or Ray address before anything is written."""
    from modelruntime.modelstore import checkpoint_is_complete
    from rlhf.jobs import _policy_job_params
    from rlhf.policies import ADAPTER_CONFIG
    from rlhf.reward_server import SAFETY_LABEL
    from rlhf.selectors import policy_prompts, policy_version_resolve
    from rlhf.work import _training_data, policy_dir

    params = _policy_job_params(OpenRLHFConfig, config)  # the checks (and the name) PPO gets
    cfg = OpenRLHFConfig.from_dict(params["config"])
    parent = policy_version_resolve(cfg.policy)
    if checkpoint_is_complete(parent.checkpoint_path) and (Path(parent.checkpoint_path) / ADAPTER_CONFIG).is_file():
        raise ValidationError({"policy": f"{parent.name!r} is a LoRA adapter; OpenRLHF starts from full weights"})
    reward_url = reward_url or reward_url_default()
    url = urlparse(reward_url)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ValidationError({"reward_url": f"{reward_url!r} is not an http(s) URL like http://host:5000/get_reward"})
    if ray_address:
        from modelruntime.raylaunch import RayError, ray_client

        try:
            ray_client(ray_address)
        except RayError as error:
            raise ValidationError({"ray_address": str(error)}) from error
    prompts = policy_prompts(project_name=cfg.project, heldout_fraction=cfg.heldout_fraction, limit=cfg.max_prompts)
    output_dir = Path(output) if output else policy_dir(cfg.name) / ENGINE
    output_dir.mkdir(parents=True, exist_ok=True)
    dataset = output_dir / DATASET_NAME
    rows = [{INPUT_KEY: p.messages, LABEL_KEY: SAFETY_LABEL if p.is_safety else "helpfulness"} for p in prompts]
    _write_replace(dataset, "".join(json.dumps(row) + "\n" for row in rows))
    argv = openrlhf_argv(cfg, pretrain=str(Path(parent.checkpoint_path).resolve()), dataset=dataset.resolve(),
                         output_dir=output_dir.resolve(), reward_url=reward_url, prompts=len(prompts))
    params.update(
        parent=parent.name, reward_url=reward_url, ray_address=ray_address, output_dir=str(output_dir.resolve()),
        dataset=str(dataset.resolve()), model_dir=str((output_dir / MODEL_DIR).resolve()), argv=argv,
        serve_rewards=serve_rewards_command(cfg, reward_url),
        data={**_training_data(cfg, parent, prompts), "engine": f"{ENGINE} {OPENRLHF_VERSION}",
              "dataset": str(dataset.resolve())},
    )
    _write_replace(output_dir / PLAN_NAME, json.dumps(params, indent=2))
    return params


def rl_handoff_start(*, params: dict, created_by=None) -> Job:
    if not params.get("ray_address"):
        raise ValidationError({"ray_address": "a Ray address (http://HEAD:8265) is needed to submit the run"})
    return job_create(kind=Job.Kind.RL_HANDOFF, params=params, created_by=created_by)


def rl_handoff_work(job, on_progress):
    """Submit (or, on a retry, follow again) the Ray job; import its checkpoint when it succeeds."""
    from modelruntime.launch import RunCancelled
    from modelruntime.raylaunch import ray_client, ray_job_follow, ray_job_stop, ray_job_submit

    params, address = job.params, job.params["ray_address"]
    client = ray_client(address)
    ray_job_id = job.metrics.get("ray_job_id")
    if ray_job_id and _ray_job_resumable(client, ray_job_id):
        on_progress(0, 1, log_line=f"following Ray job {ray_job_id}, submitted by an earlier attempt")
    else:
        ray_job_id = ray_job_submit(client, command=params["argv"], cwd=params["output_dir"],
                                    metadata={"margin_job": job.pk, "policy_version": params["config"]["name"]})
        try:  # cancelled in the meantime (JobCancelled from on_progress): the run must not go on alone
            on_progress(0, 1, metrics={"ray_job_id": ray_job_id},
                        log_line=f"submitted Ray job {ray_job_id} to {address}: {shlex.join(params['argv'])}")
        except BaseException:
            ray_job_stop(client, ray_job_id)
            raise
    pending = []

    def relay():
        if pending:
            skipped = len(pending) - LOG_LINES_PER_POLL
            lines = ([f"({skipped} lines skipped)"] if skipped > 0 else []) + pending[-LOG_LINES_PER_POLL:]
            pending.clear()
            on_progress(0, 1, log_line="\n".join(line[:500] for line in lines))

    try:
        ray_job_follow(client, ray_job_id, on_log=pending.append, on_poll=relay, poll_seconds=POLL_SECONDS,
                       cancel_requested=lambda: Job.objects.filter(pk=job.pk, cancel_requested=True).exists())
    except RunCancelled as stopped:
        raise JobCancelled(str(stopped)) from stopped
    relay()
    version = external_policy_import(job=job, ray_job_id=ray_job_id)
    on_progress(1, 1, log_line=f"imported {params['model_dir']} as policy version {version.name}")
    return {"policy_version_id": version.pk, "name": version.name, "ray_job_id": ray_job_id}


def _ray_job_resumable(client, ray_job_id) -> bool:
    from ray.job_submission import JobStatus

    try:
        return client.get_job_status(ray_job_id) in (JobStatus.PENDING, JobStatus.RUNNING, JobStatus.SUCCEEDED)
    except RuntimeError:  # the head no longer knows it (restarted): submit again; OpenRLHF resumes
        return False


def external_policy_import(*, job, ray_job_id: str) -> PolicyVersion:
    """The Hugging Face checkpoint the run wrote, as a PolicyVersion (kind EXTERNAL) with its parent,
    config and data. Its files move into the model store under the one atomic writer."""
    from modelruntime.checkpoint import folder_write_atomic
    from modelruntime.modelstore import MARKER_NAME, checkpoint_is_complete
    from rlhf.policies import ADAPTER_CONFIG
    from rlhf.work import _version_store, policy_dir

    params = job.params
    config = OpenRLHFConfig.from_dict(params["config"])
    parent = PolicyVersion.objects.get(name=params["parent"])
    source, dest = Path(params["model_dir"]), policy_dir(config.name) / "policy"
    weights = source.is_dir() and (any(source.glob("*.safetensors")) or (source / ADAPTER_CONFIG).is_file())
    if weights and (source / "config.json").is_file():
        folder_write_atomic(dest, lambda tmp: [shutil.move(str(p), tmp / p.name) for p in source.iterdir()],
                            marker_name=MARKER_NAME,
                            marker={"name": config.name, "parent": parent.name, "engine": ENGINE, "ray_job_id": ray_job_id})
    elif not checkpoint_is_complete(dest):  # moved already by an attempt that died before the row
        run = f"Ray job {ray_job_id} succeeded but " if ray_job_id else ""
        raise ValueError(f"{run}{source} holds no Hugging Face checkpoint (config.json and *.safetensors): "
                         "did OpenRLHF save elsewhere, or not finish?")
    return _version_store(job=job, name=config.name, kind=PolicyVersion.Kind.EXTERNAL, parent=parent,
                          checkpoint=dest, config=config,
                          data={**params["data"], "ray_job_id": ray_job_id, "argv": params["argv"]},
                          metrics={"ray_job_id": ray_job_id, "engine": f"{ENGINE} {OPENRLHF_VERSION}"})


def rl_handoff_plan_read(plan: Path | str) -> dict:
    """The params rl_handoff_prepare wrote to handoff.json, for importing a run started by hand."""
    try:
        params = json.loads(Path(plan).read_text())
        name = params["config"]["name"]
        params["parent"], params["model_dir"], params["data"]  # noqa: B018 (the keys the import reads)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValidationError({"import_plan": f"{plan} is not a hand-off plan (handoff.json): {error}"}) from error
    if PolicyVersion.objects.filter(name=name).exists():
        raise ValidationError({"import_plan": f"a policy version named {name!r} exists already"})
    return params


def rl_handoff_import_work(job, on_progress):
    version = external_policy_import(job=job, ray_job_id=job.params.get("ray_job_id", ""))
    on_progress(1, 1, log_line=f"imported {job.params['model_dir']} as policy version {version.name}")
    return {"policy_version_id": version.pk, "name": version.name}


def rl_handoff_import_run(*, job_id, console=None):
    from core.progress import work_with_console

    return job_run(job_id=job_id, kind=Job.Kind.RL_HANDOFF, work=work_with_console(rl_handoff_import_work, console))


def rl_handoff_run(*, job_id, console=None):
    from core.progress import work_with_console

    return job_run(job_id=job_id, kind=Job.Kind.RL_HANDOFF, work=work_with_console(rl_handoff_work, console))


def _write_replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
