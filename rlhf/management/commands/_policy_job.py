"""What the policy-job commands share: one option per config field (from the dataclass, with its
help), validation through the same service as the dashboard, a local job row run in this
process with a progress bar, or `--queue` to hand it to a gpu worker."""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from core.jsonio import TOO_DEEP, RecordError, utf8_check
from margin.models import Job


def validation_message(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items())
    return " ".join(error.messages)


class ProgressBar:
    """on_progress for a terminal: a tqdm bar per stage, log lines printed above it."""

    def __init__(self, description: str):
        self.bar = tqdm(total=1, desc=description, unit="step", dynamic_ncols=True)

    def __call__(self, step, total, metrics=None, log_line=None):
        if log_line:
            self.bar.write(log_line)
        if total and total != self.bar.total:
            self.bar.reset(total=total)
        self.bar.n = min(step, total or step)
        self.bar.refresh()

    def close(self):
        self.bar.close()


class PolicyJobCommand(BaseCommand):
    config_class = None  # the dataclass whose fields become options
    kind = None  # Job.Kind
    params = None  # service: config dict -> job params, raising ValidationError
    start = None  # service: queue the job
    run = None  # service: run the job in this process

    def add_arguments(self, parser):
        parser.add_argument("--config", type=Path, help="JSON file of config values; options below override it")
        parser.add_argument("--queue", action="store_true", help="queue the job for a gpu worker instead of running it here")
        hints = typing.get_type_hints(self.config_class)
        for f in fields(self.config_class):
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

    def config_from_options(self, options) -> dict:
        config = {}
        if options["config"]:
            try:
                utf8_check(options["config"])
                config = json.loads(options["config"].read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as bad:
                raise CommandError(f"--config {options['config']}: {bad}") from bad
            except RecursionError:
                raise CommandError(f"--config {options['config']}: {TOO_DEEP}") from None
            except RecordError as bad:  # "--config ppo.json, line 2, field “(line)”: not UTF-8 ..."
                raise CommandError(f"--config {options['config']}, {bad}") from bad
            if not isinstance(config, dict):
                raise CommandError(f"--config {options['config']}: expected a JSON object of field values")
        for f in fields(self.config_class):
            if options.get(f.name) is not None:
                config[f.name] = options[f.name]
        return config

    def handle(self, *args, **options):
        config = self.config_from_options(options)
        service = type(self)
        try:
            if options["queue"]:
                job = service.start(config=config)
                self.stdout.write(f"queued job {job.pk} ({job.get_kind_display()})")
                return
            params = service.params(config)
        except ValidationError as bad:
            raise CommandError(validation_message(bad)) from bad
        job = Job.objects.create(kind=self.kind, params=params)
        bar = ProgressBar(f"job {job.pk}")
        try:
            service.run(job_id=job.pk, console=bar)
        except Exception as error:
            raise CommandError(f"job {job.pk} failed: {type(error).__name__}: {error}") from error
        finally:
            bar.close()
        job.refresh_from_db()
        if job.state != Job.State.SUCCEEDED:
            raise CommandError(f"job {job.pk} ended {job.state}")
        self.stdout.write(json.dumps(job.result, indent=2, default=str))
