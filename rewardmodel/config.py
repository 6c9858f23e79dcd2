"""Reward-model training hyperparameters, with the Llama 2 paper's defaults (Touvron et al. 2023).

Every field carries a one-line doc in `metadata["help"]`; forms and `--help` text read it.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields


class ConfigError(ValueError):
    """A bad config value; `field` names it for forms and commands."""

    def __init__(self, field_name, message):
        self.field = field_name
        super().__init__(message)


def _field(default, help):
    return field(default=default, metadata={"help": help})


@dataclass
class RewardModelConfig:
    base_model: str = _field(
        "", "Checkpoint to start from (a model-store path); empty means the default chat model."
    )
    # Llama 2 sec. 3.2.2: "We train for one epoch over the training data ... training longer
    # can lead to over-fitting."
    epochs: float = _field(1.0, "Passes over the training pairs (paper: 1; more overfits).")
    learning_rate: float = _field(1e-5, "Peak AdamW learning rate (paper: 1e-5, 5e-6 for 70B).")
    min_lr_ratio: float = _field(0.1, "Cosine schedule floor as a share of the peak (paper: 10 %).")
    warmup_ratio: float = _field(0.03, "Linear warm-up as a share of all steps (paper: 3 %).")
    min_warmup_steps: int = _field(5, "Warm-up lasts at least this many steps (paper: 5).")
    # Llama 2 sec. 2.2 (pretraining, reused for the RM in sec. 3.2.2): AdamW with beta1 0.9,
    # beta2 0.95, eps 1e-5.
    adam_beta1: float = _field(0.9, "AdamW beta1 (paper: 0.9).")
    adam_beta2: float = _field(0.95, "AdamW beta2 (paper: 0.95).")
    adam_eps: float = _field(1e-5, "AdamW epsilon (paper: 1e-5).")
    weight_decay: float = _field(0.1, "AdamW weight decay (paper: 0.1).")
    max_grad_norm: float = _field(1.0, "Gradient clipping norm (paper: 1.0).")
    # The paper's effective batch is 512 pairs (1024 rows); a CPU run uses far fewer.
    batch_size: int = _field(8, "Pairs per forward pass (chosen and rejected go in one pass).")
    gradient_accumulation_steps: int = _field(4, "Forward passes per optimizer step.")
    max_length: int = _field(
        1024, "Tokens per scored dialogue; longer ones lose their oldest context first."
    )
    # A pair's row is masked attention, which CPU kernels hold as rows x width^2 scores per layer
    # for the backward pass: a cap on padded tokens per forward keeps that bounded.
    max_batch_tokens: int = _field(
        4096, "Padded tokens per forward pass; a longer micro-batch is run in pieces (0: no cap)."
    )
    margin_scheme: str = _field(
        "", "none, small (1, 2/3, 1/3, 0) or large (3, 2, 1, 0); empty: the project's setting."
    )
    train_layers: int = _field(
        0, "Train only the top N transformer layers (plus final norm and head); 0 trains all."
    )
    lora_rank: int = _field(0, "LoRA rank for the attention and MLP projections; 0 disables LoRA.")
    lora_alpha: float = _field(16.0, "LoRA scaling numerator (alpha / rank scales the update).")
    heldout_fraction: float = _field(
        0.1, "Share of prompts held out for evaluation, chosen by prompt so none is in both."
    )
    min_judgments: int = _field(
        1, "Comparisons with fewer judgments are skipped; raise it to require overlap."
    )
    # Llama 2 sec. 3.2.2, "Data Composition": helpfulness RM on all helpfulness data plus an
    # equal share of safety (and open-source) data; safety RM on safety data plus ~10 % helpful.
    mix_ratio: float = _field(
        -1.0, "Other-objective pairs added per own pair; -1: paper's 1.0 (helpful) or 0.1 (safety)."
    )
    checkpoint_every: int = _field(50, "Save a resumable checkpoint every N optimizer steps.")
    seed: int = _field(0, "Seeds data order, the held-out split and the head's initialisation.")
    max_pairs: int = _field(0, "Use at most this many training pairs (0: all); for quick runs.")

    def __post_init__(self):
        _check_types(self)
        positive = ("learning_rate", "batch_size", "gradient_accumulation_steps", "max_length",
                    "epochs", "checkpoint_every", "min_judgments")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(name, f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.adam_eps <= 0:
            raise ConfigError("adam_eps", f"adam_eps must be > 0, got {self.adam_eps!r}")
        for name in ("min_lr_ratio", "warmup_ratio", "heldout_fraction", "adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(name, f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        for name in ("weight_decay", "max_grad_norm", "train_layers", "lora_rank", "min_warmup_steps",
                     "max_pairs", "seed", "max_batch_tokens"):
            if getattr(self, name) < 0:
                raise ConfigError(name, f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.margin_scheme not in ("", "none", "small", "large"):
            raise ConfigError(
                "margin_scheme", f"margin_scheme must be none, small or large, got {self.margin_scheme!r}"
            )
        if self.mix_ratio != -1 and self.mix_ratio < 0:
            raise ConfigError("mix_ratio", f"mix_ratio must be >= 0 (or -1 for the paper's), got {self.mix_ratio!r}")
        if self.max_length < 16:
            raise ConfigError("max_length", f"max_length must be at least 16 tokens, got {self.max_length}")

    @classmethod
    def from_dict(cls, values: dict) -> "RewardModelConfig":
        """Build from user input; unknown names and bad values raise ValueError naming the field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                unknown[0], f"unknown config field {unknown[0]!r}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)

    def mix_ratio_for(self, objective: str) -> float:
        if self.mix_ratio >= 0:
            return self.mix_ratio
        return 1.0 if objective == "helpfulness" else 0.1


def config_help() -> dict:
    """Field name -> (default, help); for forms and command-line help."""
    return {
        f.name: (f.default if f.default is not MISSING else None, f.metadata.get("help", ""))
        for f in fields(RewardModelConfig)
    }


def _check_types(config):
    for f in fields(config):
        value = getattr(config, f.name)
        expected = type(f.default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
            continue
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(
                f.name, f"{f.name} must be {expected.__name__}, got {type(value).__name__} {value!r}"
            )
        if expected is float and not math.isfinite(value):  # "--set learning_rate=NaN" parses as JSON
            raise ConfigError(f.name, f"{f.name} must be a finite number, got {value!r}")
        if expected is str and "\x00" in value:  # PostgreSQL refuses NUL in text and in JSON
            raise ConfigError(f.name, f"{f.name} must not contain a NUL character")
