"""Hyperparameters of the policy jobs, one dataclass per algorithm, with Llama 2's defaults cited
(Touvron et al. 2023, sec. 3.1 and 3.2.3). Every field has a one-line doc in `metadata["help"]`
that forms and command help read. `from_dict` builds one from user input and raises
`ConfigError(field, message)` on an unknown field, a wrong type or a value out of range.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields


class ConfigError(ValueError):
    """A bad config value; `field` names it for forms and commands."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


def _field(default, help, **checks):
    """A dataclass field with its doc; checks: gt / ge / le / lt bounds, choices."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})


class _Validated:
    """from_dict / to_dict / field checks shared by the configs below."""

    CPU_PRESET: typing.ClassVar[dict] = {}  # what `preset: cpu` replaces, where a config has one

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in fields(self):
            value = _coerce(f.name, getattr(self, f.name), hints[f.name])
            setattr(self, f.name, value)
            _check_bounds(f, value)
        self.check()

    def check(self):
        """Cross-field rules; subclasses add theirs."""

    @classmethod
    def from_dict(cls, values: dict):
        if not isinstance(values, dict):
            raise ConfigError("config", f"config must be a dict of field values, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown field {unknown[0]!r}; known fields: {', '.join(known)}")
        # Values the user gave win over the preset's.
        preset = cls.CPU_PRESET if values.get("preset") == "cpu" else {}
        return cls(**{**preset, **values})

    def to_dict(self) -> dict:
        return asdict(self)


def config_help(config_class) -> dict:
    """Field name -> (default, help), for forms and command-line help."""
    result = {}
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else f.default_factory()
        result[f.name] = (default, f.metadata.get("help", ""))
    return result


def _coerce(name, value, hint):
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, f"{name} must be a list of {item.__name__}, got {value!r}")
        return [_coerce(name, v, item) for v in value]
    if isinstance(hint, types.UnionType):  # `int | None`
        if value is None:
            return None
        hint = next(h for h in typing.get_args(hint) if h is not type(None))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, hint) or (isinstance(value, bool) and hint is not bool):
        raise ConfigError(name, f"{name} must be {hint.__name__}, got {type(value).__name__} {value!r}")
    if hint is float and not math.isfinite(value):  # "--kl-beta nan" parses; a job's JSON cannot hold it
        raise ConfigError(name, f"{name} must be a finite number, got {value!r}")
    if hint is str and "\x00" in value:  # PostgreSQL refuses NUL in text and in JSON
        raise ConfigError(name, f"{name} must not contain a NUL character")
    return value


def _check_bounds(f, value):
    values = value if isinstance(value, list) else [value]
    meta = f.metadata
    for v in values:
        if v is None:
            continue
        if "choices" in meta and v not in meta["choices"]:
            raise ConfigError(f.name, f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}")
        for key, ok, words in (("gt", lambda a, b: a > b, "> "), ("ge", lambda a, b: a >= b, ">= "),
                               ("lt", lambda a, b: a < b, "< "), ("le", lambda a, b: a <= b, "<= ")):
            if key in meta and not ok(v, meta[key]):
                raise ConfigError(f.name, f"{f.name} must be {words}{meta[key]}, got {v!r}")


@dataclass
class PolicyJobConfig(_Validated):
    """What a policy job reads and writes; the ML configs below add their hyperparameters."""

    policy: str = _field("", "Policy version to start from (its name); empty: the newest active one.")
    project: str = _field("", "Project whose prompts are used (its name); empty: every project's.")
    helpfulness_rm: str = _field("", "Helpfulness reward model: a registered name or a checkpoint path.")
    safety_rm: str = _field("", "Safety reward model: a registered name or a checkpoint path.")
    max_prompts: int = _field(64, "Use at most this many prompts (the first user turn of each dialogue).", gt=0)
    heldout_fraction: float = _field(
        0.1, "Share of prompts kept out of training, for evaluate_policy.", ge=0.0, lt=1.0
    )
    seed: int = _field(0, "Seeds prompt order, sampling and initialisation.", ge=0)


@dataclass
class SFTConfig(_Validated):
    # Llama 2 sec. 3.1 "Fine-Tuning Details": cosine schedule, lr 2e-5, weight decay 0.1,
    # batch 64, sequence length 4096, 2 epochs, loss on answer tokens only.
    learning_rate: float = _field(2e-5, "Peak AdamW learning rate (paper, SFT: 2e-5).", gt=0)
    epochs: float = _field(2.0, "Passes over the fine-tuning examples (paper, SFT: 2).", gt=0)
    batch_size: int = _field(64, "Examples per optimizer step (paper: 64).", gt=0)
    micro_batch_size: int = _field(4, "Examples per forward pass; gradients accumulate up to batch_size.", gt=0)
    # Llama 2 sec. 2.2, kept for fine-tuning (sec. 3.1, 3.2.3): AdamW beta1 0.9, beta2 0.95, eps 1e-5.
    adam_beta1: float = _field(0.9, "AdamW beta1 (paper: 0.9).", ge=0, lt=1)
    adam_beta2: float = _field(0.95, "AdamW beta2 (paper: 0.95).", ge=0, lt=1)
    adam_eps: float = _field(1e-5, "AdamW epsilon (paper: 1e-5).", gt=0)
    weight_decay: float = _field(0.1, "AdamW weight decay (paper: 0.1).", ge=0)
    max_grad_norm: float = _field(1.0, "Gradient clipping norm (paper: 1.0).", gt=0)
    max_length: int = _field(4096, "Tokens per example, prompt and answer (paper: 4096).", ge=16)
    min_lr_ratio: float = _field(0.0, "Cosine schedule floor as a share of the peak.", ge=0, lt=1)


@dataclass
class RejectionSamplingConfig(SFTConfig, PolicyJobConfig):
    # Llama 2 sec. 3.2.3: K samples per prompt from the latest policy, the best by the RM kept,
    # fine-tuned on like SFT; Figure 7 plots max and median reward against K (up to 100).
    k: int = _field(4, "Samples per prompt; the best by reward is kept (paper: up to 100 in Fig. 7).", gt=0)
    temperature: float = _field(
        1.2, "Sampling temperature of the kept samples (paper: best at 1.2-1.3 for RLHF models).", gt=0
    )
    curve_temperatures: list[float] = _field(
        [], "Extra temperatures sampled only for the reward-vs-K curve (Fig. 8).", gt=0
    )
    top_p: float = _field(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = _field(128, "Longest sampled response, in tokens.", gt=0)
    pool_previous: bool = _field(
        True, "Pool the winners of all earlier rejection-sampling versions (paper: from RLHF-V4 on)."
    )
    generation_batch_size: int = _field(64, "Rows per generate call of the sampling engine.", gt=0)
    name: str = _field("", "Name of the new policy version; empty: RLHF-V<n>.")
    preset: str = _field("paper", "paper, or cpu: smaller batches and lengths for a CPU.", choices=("paper", "cpu"))

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 512, "epochs": 1.0,
                  "max_new_tokens": 48, "max_prompts": 16}


@dataclass
class PPOConfig(PolicyJobConfig):
    # Llama 2 sec. 3.2.3 "Training Details": AdamW (0.9, 0.95, eps 1e-5), weight decay 0.1,
    # gradient clipping 1.0, constant lr 1e-6, batch 512, PPO clip 0.2, minibatch 64, one
    # gradient step per minibatch, beta 0.01 (7B, 13B) or 0.005 (34B, 70B), 200-400 iterations.
    iterations: int = _field(200, "PPO iterations, one batch of rollouts each (paper: 200-400).", gt=0)
    batch_size: int = _field(512, "Rollouts per iteration (paper: 512).", ge=2)
    minibatch_size: int = _field(64, "Rollouts per gradient step; one step per minibatch (paper: 64).", gt=0)
    learning_rate: float = _field(1e-6, "Constant AdamW learning rate (paper: 1e-6).", gt=0)
    adam_beta1: float = _field(0.9, "AdamW beta1 (paper: 0.9).", ge=0, lt=1)
    adam_beta2: float = _field(0.95, "AdamW beta2 (paper: 0.95).", ge=0, lt=1)
    adam_eps: float = _field(1e-5, "AdamW epsilon (paper: 1e-5).", gt=0)
    weight_decay: float = _field(0.1, "AdamW weight decay (paper: 0.1).", ge=0)
    max_grad_norm: float = _field(1.0, "Gradient clipping norm (paper: 1.0).", gt=0)
    clip_range: float = _field(0.2, "PPO ratio clip epsilon (paper: 0.2).", gt=0)
    kl_beta: float = _field(0.01, "Per-token KL penalty to the initial policy (paper: 0.01; 0.005 for 34B/70B).", ge=0)
    gamma: float = _field(1.0, "Discount over response tokens (not in the paper; TRL's 1.0).", ge=0, le=1)
    gae_lambda: float = _field(0.95, "GAE lambda (not in the paper; TRL's 0.95).", ge=0, le=1)
    value_coef: float = _field(0.1, "Weight of the value loss in the total loss (TRL's 0.1).", ge=0)
    value_clip: float = _field(0.2, "Clip of the value update around the rollout's values (TRL's 0.2).", gt=0)
    whiten_rewards: bool = _field(True, "Whiten the sequence scores over the batch (paper: whitened logit).")
    temperature: float = _field(1.0, "Rollout sampling temperature (1: the policy's own distribution).", gt=0)
    max_new_tokens: int = _field(256, "Longest rollout response, in tokens.", gt=0)
    generation_batch_size: int = _field(64, "Rows per generate call of the sampling engine.", gt=0)
    lora_rank: int = _field(0, "LoRA rank on attention and MLP projections; 0 trains every weight.", ge=0)
    lora_alpha: float = _field(16.0, "LoRA scaling numerator (alpha / rank scales the update).", gt=0)
    checkpoint_every: int = _field(10, "Save a resumable state every N iterations.", gt=0)
    kl_stop: float = _field(
        0.0, "Stop early when the mean sequence KL to the initial policy exceeds this (0: never).", ge=0
    )
    name: str = _field("", "Name of the new policy version; empty: RLHF-V<n>.")
    preset: str = _field("paper", "paper, or cpu: small batches, short responses, larger lr.", choices=("paper", "cpu"))

    # 8 rollouts x 48 tokens is ~1 minute per iteration for SmolLM2-135M on 2 cores; with so
    # few samples per step the paper's lr 1e-6 would not move the policy in a few iterations.
    CPU_PRESET = {"iterations": 4, "batch_size": 8, "minibatch_size": 4, "learning_rate": 1e-5,
                  "max_new_tokens": 48, "max_prompts": 16, "checkpoint_every": 1}

    def check(self):
        if self.minibatch_size > self.batch_size:
            raise ConfigError("minibatch_size", f"minibatch_size ({self.minibatch_size}) must be <= batch_size ({self.batch_size})")
        if self.batch_size % self.minibatch_size:
            raise ConfigError("minibatch_size", f"batch_size ({self.batch_size}) must be a multiple of minibatch_size ({self.minibatch_size})")


@dataclass
class PolicyEvaluationConfig(PolicyJobConfig):
    against: str = _field("", "Version to compare with (its name); empty: the policy's parent.")
    temperature: float = _field(0.7, "Sampling temperature for both versions.", ge=0)
    max_new_tokens: int = _field(128, "Longest sampled response, in tokens.", gt=0)
    max_prompts: int = _field(32, "Held-out prompts to judge on.", gt=0)


@dataclass
class PublishSamplesConfig(_Validated):
    """Two versions / temperatures answer a project's prompts; the pairs go to annotators."""

    project: str = _field("", "Project whose open batch receives the comparisons (its name).")
    policy_a: str = _field("", "First version (its name); empty: the newest active one.")
    policy_b: str = _field("", "Second version (its name); empty: the same as policy_a.")
    temperature_a: float = _field(0.7, "Sampling temperature of the first response.", ge=0)
    temperature_b: float = _field(1.0, "Sampling temperature of the second response.", ge=0)
    max_new_tokens: int = _field(128, "Longest sampled response, in tokens.", gt=0)
    max_prompts: int = _field(32, "Prompts to publish (dialogues without a comparison in the batch).", gt=0)
    seed: int = _field(0, "Seeds sampling.", ge=0)

    def check(self):
        if (self.policy_b or self.policy_a) == self.policy_a and self.temperature_a == self.temperature_b:
            raise ConfigError("temperature_b", "the two responses need two versions or two temperatures")
