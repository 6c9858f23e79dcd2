"""Reward-model training hyperparameters, with the Llama 2 paper's defaults (Touvron et al. 2023).

Every field carries a one-line doc in `metadata["help"]` and its bounds; forms and command flags
read them. The validated-dataclass base and `ConfigError` are modelruntime/config.py's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from modelruntime.config import AdamWConfig, ConfigError, DistributedConfig, config_field

PROBE_LAYERS = re.compile(r"^\d+(,\d+)*$")
# Fields of fine-tuning a probe config must leave at these values (a probe trains no weights).
FINETUNE_ONLY = {"processes": 1, "nodes": 1, "lora_rank": 0, "train_layers": 0, "safety_aux_weight": 0.0,
                 "length_decorrelation_weight": 0.0, "length_head": False, "length_balanced_batches": False}


@dataclass
class RewardModelConfig(AdamWConfig, DistributedConfig):  # processes > 1: torchrun + FSDP2 (issue 19)
    base_model: str = config_field(
        "", "Checkpoint to start from (a model-store path); empty means the default chat model."
    )
    # Llama 2 sec. 3.2.2: "We train for one epoch over the training data ... training longer
    # can lead to over-fitting."
    epochs: float = config_field(1.0, "Passes over the training pairs (paper: 1; more overfits).", gt=0)
    learning_rate: float = config_field(1e-5, "Peak AdamW learning rate (paper: 1e-5, 5e-6 for 70B).", gt=0)
    min_lr_ratio: float = config_field(
        0.1, "Cosine schedule floor as a share of the peak (paper: 10 %).", ge=0, lt=1
    )
    warmup_ratio: float = config_field(0.03, "Linear warm-up as a share of all steps (paper: 3 %).", ge=0, lt=1)
    min_warmup_steps: int = config_field(5, "Warm-up lasts at least this many steps (paper: 5).", ge=0)
    # AdamW's betas, eps, weight decay and clipping: AdamWConfig (Llama 2 sec. 2.2, 3.2.2).
    # The paper's effective batch is 512 pairs (1024 rows); a CPU run uses far fewer.
    batch_size: int = config_field(8, "Pairs per forward pass (chosen and rejected go in one pass).", gt=0)
    gradient_accumulation_steps: int = config_field(4, "Forward passes per optimizer step.", gt=0)
    max_length: int = config_field(
        1024, "Tokens per scored dialogue; longer ones are cut as truncation_side says.", ge=16
    )
    # Issue 21: at a CPU recipe's 192 tokens, "left" drops the whole prompt of most helpfulness
    # pairs and reads a long answer from its middle; "right" keeps the question and the answer's start.
    truncation_side: str = config_field(
        "left", "Too long: left drops the oldest tokens (context, then a long response's start); right keeps "
        "the prompt's newest tokens (at least half) and the response's start and end-of-turn token.",
        choices=("left", "right"),
    )
    # A pair's row is masked attention, which CPU kernels hold as rows x width^2 scores per layer
    # for the backward pass: a cap on padded tokens per forward keeps that bounded.
    max_batch_tokens: int = config_field(
        4096, "Padded tokens per forward pass; a longer micro-batch is run in pieces (0: no cap).", ge=0
    )
    margin_scheme: str = config_field(
        "", "none, small (1, 2/3, 1/3, 0) or large (3, 2, 1, 0); empty: the project's setting."
    )
    train_layers: int = config_field(
        0, "Train only the top N transformer layers (plus final norm and head); 0 trains all.", ge=0
    )
    lora_rank: int = config_field(0, "LoRA rank for the attention and MLP projections; 0 disables LoRA.", ge=0)
    lora_alpha: float = config_field(16.0, "LoRA scaling numerator (alpha / rank scales the update).")
    heldout_fraction: float = config_field(
        0.1, "Share of prompts held out for evaluation, chosen by prompt so none is in both.", ge=0, lt=1
    )
    min_judgments: int = config_field(
        1, "Comparisons with fewer judgments are skipped; raise it to require overlap.", gt=0
    )
    # Llama 2 sec. 3.2.2, "Data Composition": helpfulness RM on all helpfulness data plus an
    # equal share of safety (and open-source) data; safety RM on safety data plus ~10 % helpful.
    mix_ratio: float = config_field(
        -1.0, "Other-objective pairs added per own pair; -1: paper's 1.0 (helpful) or 0.1 (safety)."
    )
    # Llama 2 Table 29: a binary safe/unsafe term on the safety RM lifted unsafe recall at 0.5
    # from 73.0 % to 90.4 %; the paper gives no weight, so 0 keeps it off and 1.0 weighs it
    # like the ranking loss.
    safety_aux_weight: float = config_field(
        0.0, "Weight of the safety auxiliary loss on labelled responses (Table 29); 0: off.", ge=0
    )
    # Issue 21: a small RM learns "longer wins" from data where the chosen answer is mostly the
    # longer one. Both options are off by default (the paper has neither).
    length_balanced_batches: bool = config_field(
        False, "Each forward pass holds as many pairs whose chosen is longer as shorter, where the data allows."
    )
    # ODIN (Chen et al. 2024) decorrelates its quality reward from length; ours: weight x the
    # squared batch correlation of the score gap with the length gap (rewardmodel/loss.py).
    length_decorrelation_weight: float = config_field(
        0.0, "Weight of the squared batch correlation of score gap and length gap (ODIN); 0: off.", ge=0
    )
    # ODIN's length head, reduced to one weight fitted before training (rewardmodel/loss.py).
    length_head: bool = config_field(
        False, "A fitted length term (weight x log length ratio) takes the length part of each preference "
        "in training and is dropped at scoring (ODIN's length head)."
    )
    # Issue 21 (bench/rm_probe.py, bench/REWARD-MODELS.md): on CPU a frozen chat model read once per pair reads every
    # pair in the 30 minutes where fine-tuning fits about 600: safety 67.2 % against 63.2-64.2 %
    # fine-tuned, helpfulness 67.8 % against fine-tuning's 66.9 % mean over three seeds.
    method: str = config_field(
        "finetune", "finetune: train the chat model with a scalar head (Llama 2); probe: keep it frozen and fit "
        "a linear head on several layers' states, last token and response mean (rewardmodel/probe.py).",
        choices=("finetune", "probe"),
    )
    probe_layers: str = config_field(
        "", "Probe: hidden states read, comma-separated (0: embeddings; the model's layer count: its final "
        "layer); empty: four, evenly spaced up to the final one."
    )
    probe_l2: float = config_field(
        0.0, "Probe: L2 weight of the head on standardised features; 0 picks it by 5-fold cross-validation "
        "over prompts.", ge=0
    )
    checkpoint_every: int = config_field(50, "Save a resumable checkpoint every N optimizer steps.", gt=0)
    seed: int = config_field(0, "Seeds data order and the head's initialisation (the held-out split is fixed: core/heldout.py).", ge=0)
    max_pairs: int = config_field(0, "Use at most this many training pairs (0: all); for quick runs.", ge=0)

    def check(self):
        # Not `choices`: the empty default means "the project's setting", which a form's select would hide.
        if self.margin_scheme not in ("", "none", "small", "large"):
            raise ConfigError(
                "margin_scheme", f"margin_scheme must be none, small or large, got {self.margin_scheme!r}"
            )
        if self.mix_ratio != -1 and self.mix_ratio < 0:
            raise ConfigError("mix_ratio", f"mix_ratio must be >= 0 (or -1 for the paper's), got {self.mix_ratio!r}")
        if self.probe_layers and not PROBE_LAYERS.match(self.probe_layers):
            raise ConfigError("probe_layers", f"probe_layers must be layer numbers separated by commas, e.g. "
                                              f"8,16,24,30; got {self.probe_layers!r}")
        if self.method != "probe" and (self.probe_layers or self.probe_l2):
            name = "probe_layers" if self.probe_layers else "probe_l2"
            raise ConfigError(name, f"{name} applies to method probe; method is {self.method!r}")
        if self.method == "probe":  # these change how weights of the model train; the probe trains none
            for name, off in FINETUNE_ONLY.items():
                if getattr(self, name) != off:
                    raise ConfigError(name, f"{name} is {getattr(self, name)!r}, but the probe (method probe) "
                                            f"trains no weights of the model: set it to {off!r} or use method finetune")

    def probe_layer_numbers(self, num_layers: int) -> tuple[int, ...]:
        """The hidden states a probe reads, checked against a model with `num_layers` layers."""
        if not self.probe_layers:
            return tuple(math.ceil(num_layers * k / 4) for k in range(1, 5))
        layers = tuple(int(layer) for layer in self.probe_layers.split(","))
        if bad := [layer for layer in layers if layer > num_layers]:
            raise ConfigError("probe_layers", f"probe_layers {bad[0]}: the model has hidden states 0-{num_layers}")
        return layers

    def mix_ratio_for(self, objective: str) -> float:
        if self.mix_ratio >= 0:
            return self.mix_ratio
        return 1.0 if objective == "helpfulness" else 0.1
