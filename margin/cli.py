"""What management commands share: one progress bar, and one way to take a job's config (a JSON
file, then `--set name=value`, then one flag per field generated from the config dataclass with
its help text), so every command reads and reports the same way."""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from django.core.management.base import CommandError
from tqdm import tqdm

from core.jsonio import TOO_DEEP, json_object_read


class ProgressBar:
    """An `on_progress(step, total, metrics=None, log_line=None)` callback drawing a tqdm bar on
    `stream` (stderr by default); log lines are printed above it, scalar metrics beside it."""

    def __init__(self, description, stream=None):
        self.bar = tqdm(desc=description, total=0, file=stream, dynamic_ncols=True)

    def __call__(self, step, total, metrics=None, log_line=None):
        if log_line:
            self.bar.write(log_line)
        if total and self.bar.total != total:
            self.bar.reset(total=total)
        self.bar.n = min(step, total or step)
        if metrics:  # a job's history (PPO's iterations, say) is for the row, not the bar
            shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
            self.bar.set_postfix(shown, refresh=False)
        self.bar.refresh()

    def close(self):
        self.bar.close()


def config_arguments_add(parser, config_class, *, settings_option=False):
    """`--config FILE`, one `--field-name` option per field of `config_class` and, where a
    command has always taken them, `--set name=value` (repeatable)."""
    parser.add_argument("--config", type=Path, help="JSON file of config values; the options below override it")
    if settings_option:
        parser.add_argument("--set", dest="set_values", action="append", default=[], metavar="FIELD=VALUE",
                            help="a config field, e.g. --set learning_rate=2e-5 (repeatable)")
    hints = typing.get_type_hints(config_class)
    for f in fields(config_class):
        default = f.default if f.default is not MISSING else f.default_factory()
        option = "--" + f.name.replace("_", "-")
        text = f"{f.metadata.get('help', '')} (default: {default!r})".replace("%", "%%")
        hint = hints[f.name]
        if hint is bool:
            parser.add_argument(option, dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text)
        elif typing.get_origin(hint) is list:
            (item,) = typing.get_args(hint)
            parser.add_argument(option, dest=f.name, type=item, nargs="*", default=None, help=text)
        else:
            parser.add_argument(option, dest=f.name, type=hint, default=None, help=text)


def config_from_options(options, config_class) -> dict:
    """The config values the user gave: the file's, then `--set`'s, then the per-field options'.
    Validation is the service's (the same as the dashboard's)."""
    config = {}
    if options.get("config"):
        try:
            config = json_object_read(options["config"], f"--config {options['config']}")
        except ValueError as bad:
            raise CommandError(str(bad)) from bad
    config.update(parse_settings(options.get("set_values")))
    for f in fields(config_class):
        if options.get(f.name) is not None:
            config[f.name] = options[f.name]
    return config


def parse_settings(pairs: list[str] | None) -> dict:
    """['lr=1e-5', 'margin_scheme=large'] -> {'lr': 1e-05, 'margin_scheme': 'large'}."""
    values = {}
    for item in pairs or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--set expects name=value, got {item!r}")
        try:
            values[name] = json.loads(raw)
        except json.JSONDecodeError:
            values[name] = raw  # a bare word is a string
        except RecursionError:
            raise CommandError(f"--set {name}: {TOO_DEEP}") from None
    return values


def validation_message(error) -> str:
    """A ValidationError as one line: 'field: message; other: message'."""
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)
