"""The one base of the ML configs (reward model, SFT, rejection sampling, PPO, evaluation): a
dataclass whose fields carry a one-line doc and their bounds, checked on construction.

A field is `config_field(default, help, gt=/ge=/lt=/le=, choices=)`; forms and command flags read
`metadata["help"]` and the type hints, so nothing is typed twice. A bad value raises
`ConfigError(field, message)`. Django-free and torch-free: the web process imports it.
"""

from __future__ import annotations

import math
import operator
import re
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields


class ConfigError(ValueError):
    """A bad config value; `field` names it for forms and commands."""

    def __init__(self, field_name: str, message: str):
        self.field = field_name
        super().__init__(message)


def config_field(default, help, **checks):
    """A dataclass field with its doc; checks: gt / ge / lt / le bounds, choices."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"help": help, **checks})
    return field(default=default, metadata={"help": help, **checks})


class ConfigBase:
    """from_dict / to_dict / type and bound checks; subclasses are dataclasses of config_fields."""

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
        """Build from user input; unknown names and bad values raise ConfigError naming the field."""
        if not isinstance(values, dict):
            raise ConfigError("config", f"config must be a dict of field values, got {type(values).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ConfigError(unknown[0], f"unknown config field {unknown[0]!r}; known fields: {', '.join(known)}")
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
    if hint is float and not math.isfinite(value):  # "--set learning_rate=NaN" parses; a job's JSON cannot hold it
        raise ConfigError(name, f"{name} must be a finite number, got {value!r}")
    if hint is str and "\x00" in value:  # PostgreSQL refuses NUL in text and in JSON
        raise ConfigError(name, f"{name} must not contain a NUL character")
    return value


_BOUNDS = {"gt": (operator.gt, "> "), "ge": (operator.ge, ">= "), "lt": (operator.lt, "< "), "le": (operator.le, "<= ")}


def _check_bounds(f, value):
    meta = f.metadata
    for v in value if isinstance(value, list) else [value]:
        if v is None:
            continue
        if "choices" in meta and v not in meta["choices"]:
            raise ConfigError(f.name, f"{f.name} must be one of {', '.join(map(str, meta['choices']))}, got {v!r}")
        failed = [key for key, (ok, _) in _BOUNDS.items() if key in meta and not ok(v, meta[key])]
        if not failed:
            continue
        lower = next((key for key in ("gt", "ge") if key in meta), None)
        upper = next((key for key in ("lt", "le") if key in meta), None)
        if lower and upper:  # "heldout_fraction must be in [0, 1), got 1.5"
            interval = (f"{'[' if lower == 'ge' else '('}{meta[lower]:g}, "
                        f"{meta[upper]:g}{']' if upper == 'le' else ')'}")
            raise ConfigError(f.name, f"{f.name} must be in {interval}, got {v!r}")
        key = failed[0]
        raise ConfigError(f.name, f"{f.name} must be {_BOUNDS[key][1]}{meta[key]}, got {v!r}")


@dataclass
class AdamWConfig(ConfigBase):
    """The optimiser fields every training config shares (modelruntime/optim.py reads them).

    Llama 2 trains every stage with AdamW beta1 0.9, beta2 0.95, eps 1e-5, weight decay 0.1 and
    gradient clipping 1.0 (sec. 2.2), kept for SFT (3.1), the reward models (3.2.2) and PPO (3.2.3).
    """

    adam_beta1: float = config_field(0.9, "AdamW beta1 (paper: 0.9).", ge=0, lt=1)
    adam_beta2: float = config_field(0.95, "AdamW beta2 (paper: 0.95).", ge=0, lt=1)
    adam_eps: float = config_field(1e-5, "AdamW epsilon (paper: 1e-5).", gt=0)
    weight_decay: float = config_field(0.1, "AdamW weight decay (paper: 0.1).", ge=0)
    max_grad_norm: float = config_field(1.0, "Gradient clipping norm (paper: 1.0).", gt=0)


@dataclass
class DistributedConfig(ConfigBase):
    """How many processes one training job runs as (modelruntime/launch.py starts them).

    One process is the default and runs in the worker itself; more run under torchrun with FSDP2
    (modelruntime/distributed.py). Every process takes its share of the same global batches, so the
    result matches the one-process run (issue 19).
    """

    processes: int = config_field(1, "Processes per node (torchrun --nproc_per_node); 1 trains in the worker.",
                                  ge=1, le=64)
    nodes: int = config_field(1, "Machines the job spans (torchrun --nnodes); more need rdzv_endpoint.", ge=1, le=64)
    rdzv_endpoint: str = config_field("", "host:port of the c10d rendezvous every node joins (several nodes only).")

    def __post_init__(self):
        super().__post_init__()
        # Here, not in check(): the algorithm configs that mix this in override check().
        if self.nodes > 1 and not self.rdzv_endpoint:
            raise ConfigError("rdzv_endpoint", f"nodes is {self.nodes}: set rdzv_endpoint to the host:port every node joins")
        if self.rdzv_endpoint and not _HOST_PORT.match(self.rdzv_endpoint):
            raise ConfigError("rdzv_endpoint", f"rdzv_endpoint must be host:port, got {self.rdzv_endpoint!r}")

    @property
    def distributed(self) -> bool:
        return self.processes * self.nodes > 1


_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
