"""Hyperparameters of the policy jobs, one dataclass per algorithm, with Llama 2's defaults cited
(Touvron et al. 2023, sec. 3.1 and 3.2.3). Every field has a one-line doc in `metadata["help"]`
that forms and command help read. `from_dict` builds one from user input and raises
`ConfigError(field, message)` on an unknown field, a wrong type or a value out of range (the
base, shared with the reward-model config, is modelruntime/config.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from modelruntime.config import AdamWConfig, ConfigBase, ConfigError, DistributedConfig, config_field
from rlhf.alarms import RewardHackingAlarmConfig


@dataclass
class PolicyJobConfig(ConfigBase):
    """What a policy job reads and writes; the ML configs below add their hyperparameters."""

    policy: str = config_field("", "Policy version to start from (its name); empty: the newest active one.")
    project: str = config_field("", "Project whose prompts are used (its name); empty: every project's.")
    helpfulness_rm: str = config_field("", "Helpfulness reward model: a registered name or a checkpoint path.")
    safety_rm: str = config_field("", "Safety reward model: a registered name or a checkpoint path.")
    max_prompts: int = config_field(64, "Use at most this many prompts (the first user turn of each dialogue).", gt=0)
    heldout_fraction: float = config_field(
        0.1, "Share of prompts kept out of training, for evaluate_policy.", ge=0.0, lt=1.0
    )
    seed: int = config_field(0, "Seeds prompt order, sampling and initialisation.", ge=0)


@dataclass
class SFTConfig(AdamWConfig, DistributedConfig):  # processes > 1: torchrun + FSDP2 (issue 19)
    # Llama 2 sec. 3.1 "Fine-Tuning Details": cosine schedule, lr 2e-5, weight decay 0.1,
    # batch 64, sequence length 4096, 2 epochs, loss on answer tokens only.
    learning_rate: float = config_field(2e-5, "Peak AdamW learning rate (paper, SFT: 2e-5).", gt=0)
    epochs: float = config_field(2.0, "Passes over the fine-tuning examples (paper, SFT: 2).", gt=0)
    batch_size: int = config_field(64, "Examples per optimizer step (paper: 64).", gt=0)
    micro_batch_size: int = config_field(4, "Examples per forward pass; gradients accumulate up to batch_size.", gt=0)
    # AdamW's betas, eps, weight decay and clipping: AdamWConfig (Llama 2 sec. 2.2, kept in 3.1).
    max_length: int = config_field(4096, "Tokens per example, prompt and answer (paper: 4096).", ge=16)
    min_lr_ratio: float = config_field(0.0, "Cosine schedule floor as a share of the peak.", ge=0, lt=1)
    checkpoint_every: int = config_field(50, "Save a resumable fine-tuning state every N optimizer steps.", gt=0)


@dataclass
class RejectionSamplingConfig(SFTConfig, PolicyJobConfig, RewardHackingAlarmConfig):  # alarms: rlhf/alarms.py
    # Llama 2 sec. 3.2.3: K samples per prompt from the latest policy, the best by the RM kept,
    # fine-tuned on like SFT; Figure 7 plots max and median reward against K (up to 100).
    k: int = config_field(4, "Samples per prompt; the best by reward is kept (paper: up to 100 in Fig. 7).", gt=0)
    temperature: float = config_field(
        1.2, "Sampling temperature of the kept samples (paper: best at 1.2-1.3 for RLHF models).", gt=0
    )
    curve_temperatures: list[float] = config_field(
        [], "Extra temperatures sampled only for the reward-vs-K curve (Fig. 8).", gt=0
    )
    top_p: float = config_field(1.0, "Nucleus sampling mass.", gt=0, le=1)
    max_new_tokens: int = config_field(128, "Longest sampled response, in tokens.", gt=0)
    pool_previous: bool = config_field(
        True, "Pool the winners of all earlier rejection-sampling versions (paper: from RLHF-V4 on)."
    )
    generation_batch_size: int = config_field(64, "Rows per generate call of the sampling engine.", gt=0)
    name: str = config_field("", "Name of the new policy version; empty: RLHF-V<n>.")
    preset: str = config_field("paper", "paper, or cpu: smaller batches and lengths for a CPU.", choices=("paper", "cpu"))

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 512, "epochs": 1.0,
                  "max_new_tokens": 48, "max_prompts": 16}


@dataclass
class PPOConfig(PolicyJobConfig, AdamWConfig, DistributedConfig, RewardHackingAlarmConfig):  # alarms: rlhf/alarms.py
    # Llama 2 sec. 3.2.3 "Training Details": AdamW (0.9, 0.95, eps 1e-5), weight decay 0.1,
    # gradient clipping 1.0, constant lr 1e-6, batch 512, PPO clip 0.2, minibatch 64, one
    # gradient step per minibatch, beta 0.01 (7B, 13B) or 0.005 (34B, 70B), 200-400 iterations.
    iterations: int = config_field(200, "PPO iterations, one batch of rollouts each (paper: 200-400).", gt=0)
    batch_size: int = config_field(512, "Rollouts per iteration (paper: 512).", ge=2)
    minibatch_size: int = config_field(64, "Rollouts per gradient step; one step per minibatch (paper: 64).", gt=0)
    learning_rate: float = config_field(1e-6, "Constant AdamW learning rate (paper: 1e-6).", gt=0)
    clip_range: float = config_field(0.2, "PPO ratio clip epsilon (paper: 0.2).", gt=0)
    kl_beta: float = config_field(0.01, "Per-token KL penalty to the initial policy (paper: 0.01; 0.005 for 34B/70B).", ge=0)
    gamma: float = config_field(1.0, "Discount over response tokens (not in the paper; TRL's 1.0).", ge=0, le=1)
    gae_lambda: float = config_field(0.95, "GAE lambda (not in the paper; TRL's 0.95).", ge=0, le=1)
    value_coef: float = config_field(0.1, "Weight of the value loss in the total loss (TRL's 0.1).", ge=0)
    value_clip: float = config_field(0.2, "Clip of the value update around the rollout's values (TRL's 0.2).", gt=0)
    whiten_rewards: bool = config_field(True, "Whiten the sequence scores over the batch (paper: whitened logit).")
    temperature: float = config_field(1.0, "Rollout sampling temperature (1: the policy's own distribution).", gt=0)
    max_new_tokens: int = config_field(256, "Longest rollout response, in tokens.", gt=0)
    generation_batch_size: int = config_field(64, "Rows per generate call of the sampling engine.", gt=0)
    lora_rank: int = config_field(0, "LoRA rank on attention and MLP projections; 0 trains every weight.", ge=0)
    lora_alpha: float = config_field(16.0, "LoRA scaling numerator (alpha / rank scales the update).", gt=0)
    checkpoint_every: int = config_field(10, "Save a resumable state every N iterations.", gt=0)
    kl_stop: float = config_field(
        0.0, "Stop early when the mean sequence KL to the initial policy exceeds this (0: never).", ge=0
    )
    name: str = config_field("", "Name of the new policy version; empty: RLHF-V<n>.")
    preset: str = config_field("paper", "paper, or cpu: small batches, short responses, larger lr.", choices=("paper", "cpu"))

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
    against: str = config_field("", "Version to compare with (its name); empty: the policy's parent.")
    temperature: float = config_field(0.7, "Sampling temperature for both versions.", ge=0)
    max_new_tokens: int = config_field(128, "Longest sampled response, in tokens.", gt=0)
    max_prompts: int = config_field(32, "Held-out prompts to judge on.", gt=0)


@dataclass
class PublishSamplesConfig(ConfigBase):
    """Two versions / temperatures answer a project's prompts; the pairs go to annotators."""

    project: str = config_field("", "Project whose open batch receives the comparisons (its name).")
    policy_a: str = config_field("", "First version (its name); empty: the newest active one.")
    policy_b: str = config_field("", "Second version (its name); empty: the same as policy_a.")
    temperature_a: float = config_field(0.7, "Sampling temperature of the first response.", ge=0)
    temperature_b: float = config_field(1.0, "Sampling temperature of the second response.", ge=0)
    max_new_tokens: int = config_field(128, "Longest sampled response, in tokens.", gt=0)
    max_prompts: int = config_field(32, "Prompts to publish (dialogues without a comparison in the batch).", gt=0)
    seed: int = config_field(0, "Seeds sampling.", ge=0)

    def check(self):
        if (self.policy_b or self.policy_a) == self.policy_a and self.temperature_a == self.temperature_b:
            raise ConfigError("temperature_b", "the two responses need two versions or two temperatures")


# --- SFT from demonstrations, DPO, Ghost Attention (issue 20) --------------------------------------


@dataclass
class TuneJobConfig(ConfigBase):
    """What the fine-tuning jobs (SFT, DPO, GAtt) read and write, beside their hyperparameters."""

    policy: str = config_field("", "Policy version to start from (its name); empty: the newest active one.")
    project: str = config_field("", "Project whose data is used (its name); empty: every project's.")
    name: str = config_field("", "Name of the new policy version; empty: <KIND>-V<n>.")
    heldout_fraction: float = config_field(
        0.1, "Share of prompts kept out of training (core/heldout.py's split, as the RM and evaluate_policy).",
        ge=0.0, lt=1.0,
    )
    seed: int = config_field(0, "Seeds data order and initialisation.", ge=0)
    lora_rank: int = config_field(0, "LoRA rank on attention and MLP projections; 0 trains every weight.", ge=0)
    lora_alpha: float = config_field(16.0, "LoRA scaling numerator (alpha / rank scales the update).", gt=0)
    # auto: the worker that runs the job picks cpu when it has no CUDA device, paper otherwise.
    preset: str = config_field("auto", "auto, paper, or cpu: smaller batches and lengths for a CPU.",
                               choices=("auto", "paper", "cpu"))


@dataclass
class SFTJobConfig(SFTConfig, TuneJobConfig):
    """SFT on the project's demonstrations (Llama 2 sec. 3.1; SFTConfig holds the paper's numbers)."""

    demonstrations: bool = config_field(True, "Train on the annotators' demonstrations of the project.")
    sft_file: str = config_field("", "Also train on this JSONL of chat rows ({\"messages\": [...]}, TRL's SFT format).")
    rejection_winners: bool = config_field(
        False, "Also train on the rejection-sampling winners saved by versions in the starting policy's lineage."
    )

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 512, "epochs": 1.0, "checkpoint_every": 5}


@dataclass
class DPOConfig(AdamWConfig):
    # Rafailov et al. 2023 ("Direct Preference Optimization"), App. B: beta 0.1, batch 64,
    # RMSprop lr 1e-6 with 150 warm-up steps, then constant. Llama 3 (Dubey et al. 2024, sec.
    # 4.1.4) kept beta 0.1 with lr 1e-5 (AdamW); AdamW's other numbers: AdamWConfig (Llama 2).
    beta: float = config_field(0.1, "KL strength beta of the implicit reward (paper: 0.1).", gt=0)
    loss_type: str = config_field(
        "sigmoid",
        "sigmoid: DPO (Rafailov et al. 2023); ipo: IPO's squared loss (Azar et al. 2023); "
        "margin: DPO minus the annotated strength's margin (ODPO's offset, Amini et al. 2024).",
        choices=("sigmoid", "ipo", "margin"),
    )
    margin_scale: float = config_field(
        1.0, "margin loss: the offset is this times the pair's margin (Llama 2's table for its strength).", ge=0
    )
    learning_rate: float = config_field(1e-6, "Peak AdamW learning rate (DPO paper: 1e-6; Llama 3: 1e-5).", gt=0)
    warmup_steps: int = config_field(150, "Linear warm-up steps (DPO paper: 150).", ge=0)
    min_lr_ratio: float = config_field(1.0, "Cosine floor as a share of the peak; 1: constant after warm-up (DPO paper).",
                                       ge=0, le=1)
    epochs: float = config_field(1.0, "Passes over the preference pairs (DPO paper: 1).", gt=0)
    batch_size: int = config_field(64, "Pairs per optimizer step (DPO paper: 64).", gt=0)
    micro_batch_size: int = config_field(4, "Pairs per forward pass; gradients accumulate up to batch_size.", gt=0)
    max_length: int = config_field(1024, "Tokens per prompt + response; longer prompts lose their oldest tokens.",
                                   ge=16)
    checkpoint_every: int = config_field(50, "Save a resumable state every N optimizer steps.", gt=0)


@dataclass
class DPOJobConfig(DPOConfig, TuneJobConfig):
    """Offline DPO from the project's judged comparisons, through the reward models' pair builder."""

    min_judgments: int = config_field(1, "Comparisons with fewer judgments are skipped (as for the RM).", gt=0)
    max_pairs: int = config_field(0, "Use at most this many training pairs (0: all).", ge=0)

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 384, "warmup_steps": 2,
                  "learning_rate": 5e-6, "checkpoint_every": 5}


@dataclass
class DPOIterativeConfig(DPOConfig, TuneJobConfig):
    """Rounds of: sample K responses per prompt from the latest version, label best vs worst by
    the reward models (rlhf/rewards.py's combined reward), DPO, a new version (Llama 3 sec. 4.1:
    each round's preference data comes from the latest model)."""

    rounds: int = config_field(2, "Sample -> label -> DPO rounds; each makes a version.", gt=0)
    k: int = config_field(4, "Samples per prompt; the best and the worst by reward make the pair.", ge=2)
    temperature: float = config_field(1.0, "Sampling temperature.", gt=0)
    max_new_tokens: int = config_field(128, "Longest sampled response, in tokens.", gt=0)
    max_prompts: int = config_field(64, "Prompts per round (the first user turn of each dialogue).", gt=0)
    helpfulness_rm: str = config_field("", "Helpfulness reward model: a registered name or a checkpoint path.")
    safety_rm: str = config_field("", "Safety reward model: a registered name or a checkpoint path.")
    generation_batch_size: int = config_field(64, "Rows per generate call of the sampling engine.", gt=0)

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 384, "warmup_steps": 2,
                  "learning_rate": 5e-6, "max_new_tokens": 32, "max_prompts": 16, "checkpoint_every": 5}


# Llama 2 sec. 3.3: "Hobbies ('You enjoy e.g. Tennis'), Language ('Speak in e.g. French'), or
# Public Figure ('Act as e.g. Napoleon')"; the paper had Llama 2-Chat write the lists. Comma-
# separated text, so staff edit them in the dashboard's job form as in `--hobbies "chess, golf"`.
GATT_HOBBIES = "tennis, gardening, chess, hiking, painting, cooking, astronomy, cycling"
GATT_LANGUAGES = "French, Spanish, German, Italian"
GATT_FIGURES = "Napoleon, Marie Curie, Albert Einstein, Cleopatra, Shakespeare"


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


@dataclass
class GAttConfig(SFTConfig, TuneJobConfig):
    """Ghost Attention (Llama 2 sec. 3.3): instruction on every user turn while sampling, only on
    the first when training, loss on the last turn's answer only."""

    hobbies: str = config_field(GATT_HOBBIES, "Hobbies, comma-separated: 'You enjoy {hobby}.' (paper's kind 1).")
    languages: str = config_field(GATT_LANGUAGES, "Languages, comma-separated: 'Always answer in {language}.'.")
    public_figures: str = config_field(GATT_FIGURES, "Public figures, comma-separated: 'Act as {figure}.'.")
    dialogues: int = config_field(32, "Synthetic dialogues to sample.", gt=0)
    turns: int = config_field(3, "User turns per synthetic dialogue (each a prompt of the project).", ge=2)
    temperature: float = config_field(0.7, "Sampling temperature of the assistant turns.", ge=0)
    max_new_tokens: int = config_field(96, "Longest sampled assistant turn, in tokens.", gt=0)
    eval_dialogues: int = config_field(8, "Held-out dialogues for the turns-kept evaluation, before and after.", ge=0)
    helpfulness_rm: str = config_field(
        "", "Judges hobby and persona instructions in the evaluation; empty: only the language check runs."
    )
    generation_batch_size: int = config_field(64, "Rows per generate call of the sampling engine.", gt=0)

    CPU_PRESET = {"batch_size": 8, "micro_batch_size": 4, "max_length": 512, "epochs": 1.0, "dialogues": 8,
                  "max_new_tokens": 32, "eval_dialogues": 4, "checkpoint_every": 5}

    def check(self):
        if not (comma_list(self.hobbies) or comma_list(self.languages) or comma_list(self.public_figures)):
            raise ConfigError("hobbies", "give at least one hobby, language or public figure")


# --- Policy safety evaluation (issue 21; Llama 2 sec. 4.4) -----------------------------------------


@dataclass
class SafetyEvaluationConfig(ConfigBase):
    """Adversarial prompts (rlhf.models.SafetyPrompt) sampled from a version, each response judged
    by the safety RM below its gate (Llama 2 sec. 3.2.3's 0.15 unless staff set one); violation rate
    per risk category with 95 % Wilson intervals (rlhf/safety_eval.py)."""

    policy: str = config_field("", "Policy version to evaluate (its name); empty: the newest active one.")
    safety_rm: str = config_field("", "Safety reward model that judges each response: a registered name or a checkpoint.")
    categories: str = config_field("", "Risk categories to evaluate, comma-separated; empty: every category.")
    max_prompts: int = config_field(500, "Evaluate at most this many prompts (ordered by category).", gt=0)
    # Llama 2 sec. 4.4 does not give its sampling settings; 0.7 is what evaluate_policy uses.
    temperature: float = config_field(0.7, "Sampling temperature.", ge=0)
    max_new_tokens: int = config_field(128, "Longest sampled response, in tokens.", gt=0)
    human_sample: int = config_field(
        0, "Send this many judged responses, picked at random, to annotators for safety labels (0: none).", ge=0)
    project: str = config_field("", "Project whose open batch receives the human sample (its name).")
    seed: int = config_field(0, "Seeds sampling and the pick of the human sample.", ge=0)

    def check(self):
        if self.human_sample and not self.project:
            raise ConfigError("project", "name the project whose open batch gets the human sample")
