import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from core.jsonio import TOO_DEEP, RecordError, utf8_check
from margin.cli import ProgressBar, parse_settings
from modelruntime.config import config_help
from rewardmodel.config import RewardModelConfig
from rewardmodel.services import reward_model_train_run, reward_model_train_start


class Command(BaseCommand):
    help = (
        "Train a reward model on a project's judgments (plus the other objective's data mixed in "
        "as in Llama 2), register it, and report its held-out accuracy. Config fields: "
        + "; ".join(f"{name} ({default!r}): {text}" for name, (default, text) in config_help(RewardModelConfig).items())
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--name", required=True, help="name to register the reward model under")
        parser.add_argument("--config", type=Path, help="JSON file of config fields")
        parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                            help="a config field, e.g. --set learning_rate=2e-5 (repeatable)")
        parser.add_argument("--enqueue", action="store_true",
                            help="send the job to the gpu queue instead of training here")

    def handle(self, *args, project, name, config, set, enqueue, **options):
        values = _read_config(config) if config else {}
        values.update(parse_settings(set))
        try:
            project_row = Project.objects.get(name=project)
        except Project.DoesNotExist:
            raise CommandError(f"Unknown project {project!r}.") from None
        try:
            job = reward_model_train_start(project=project_row, name=name, config=values, enqueue=enqueue)
        except ValidationError as invalid:
            raise CommandError(_messages(invalid)) from invalid
        if enqueue:
            self.stdout.write(f"Queued job {job.pk} on the gpu queue.")
            return
        bar = ProgressBar(f"training {name}", self.stderr._out)
        try:
            job = reward_model_train_run(job_id=job.pk, also_report=bar)
        except Exception as failure:
            raise CommandError(f"Training failed: {failure}") from failure
        finally:
            bar.close()
        heldout = job.result["heldout"]
        self.stdout.write(f"Registered reward model {name!r} (job {job.pk}).")
        self.stdout.write(f"Held-out accuracy: {heldout['accuracy']:.3f} on {heldout['pairs']} pairs")
        for strength, row in heldout["per_strength"].items():
            self.stdout.write(f"  {strength:<22} {row['accuracy']:.3f}  ({row['pairs']} pairs)")


def _read_config(path):
    try:
        utf8_check(path)
        values = json.loads(path.read_text(encoding="utf-8"))
    except OSError as problem:
        raise CommandError(f"Cannot read --config {path}: {problem}") from problem
    except RecordError as problem:
        raise CommandError(f"--config {path}, {problem}") from problem
    except json.JSONDecodeError as problem:
        raise CommandError(f"--config {path} is not JSON: {problem}") from problem
    except RecursionError:
        raise CommandError(f"--config {path}: {TOO_DEEP}") from None
    if not isinstance(values, dict):
        raise CommandError(f"--config {path} must hold a JSON object of config fields")
    return values


def _messages(invalid):
    return "; ".join(f"{field}: {' '.join(errors)}" for field, errors in invalid.message_dict.items())
