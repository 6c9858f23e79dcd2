"""What the policy-job commands share: one option per config field (from the dataclass, with its
help), validation through the same service as the dashboard, a local job row run in this
process with a progress bar, or `--queue` to hand it to a gpu worker."""

from __future__ import annotations

import json

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from margin.cli import ProgressBar, config_arguments_add, config_from_options, validation_message
from margin.models import Job


class PolicyJobCommand(BaseCommand):
    config_class = None  # the dataclass whose fields become options
    kind = None  # Job.Kind
    params = None  # service: config dict -> job params, raising ValidationError
    start = None  # service: queue the job
    run = None  # service: run the job in this process

    def add_arguments(self, parser):
        parser.add_argument("--queue", action="store_true", help="queue the job for a gpu worker instead of running it here")
        config_arguments_add(parser, self.config_class)

    def handle(self, *args, **options):
        config = config_from_options(options, self.config_class)
        service = type(self)
        try:
            if options["queue"]:
                job = service.start(config=config)
                self.stdout.write(f"queued job {job.pk} ({job.get_kind_display()})")
                return
            params = service.params(config)
        except ValidationError as bad:
            raise CommandError(validation_message(bad)) from bad
        job_run_here(self, kind=self.kind, params=params, run=service.run)


def job_run_here(command: BaseCommand, *, kind, params: dict, run) -> None:
    """A job row run in this process with a progress bar; its result printed as JSON."""
    job = Job.objects.create(kind=kind, params=params)
    bar = ProgressBar(f"job {job.pk}")
    try:
        run(job_id=job.pk, console=bar)
    except Exception as error:
        raise CommandError(f"job {job.pk} failed: {type(error).__name__}: {error}") from error
    finally:
        bar.close()
    job.refresh_from_db()
    if job.state != Job.State.SUCCEEDED:
        raise CommandError(f"job {job.pk} ended {job.state}")
    command.stdout.write(json.dumps(job.result, indent=2, default=str))
