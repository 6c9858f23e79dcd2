from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from margin.cli import ProgressBar, config_arguments_add, config_from_options, validation_message
from rewardmodel.config import RewardModelConfig
from rewardmodel.services import reward_model_train_run, reward_model_train_start


class Command(BaseCommand):
    help = (
        "Train a reward model on a project's judgments (plus the other objective's data mixed in "
        "as in Llama 2), register it, and report its held-out accuracy. Config: --config FILE, "
        "--set FIELD=VALUE, or one option per field (e.g. --learning-rate 2e-5); options win."
    )

    def add_arguments(self, parser):
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--name", required=True, help="name to register the reward model under")
        parser.add_argument("--enqueue", action="store_true",
                            help="send the job to the gpu queue instead of training here")
        config_arguments_add(parser, RewardModelConfig, settings_option=True)

    def handle(self, *args, project, name, enqueue, **options):
        values = config_from_options(options, RewardModelConfig)
        try:
            project_row = Project.objects.get(name=project)
        except Project.DoesNotExist:
            raise CommandError(f"Unknown project {project!r}.") from None
        try:
            job = reward_model_train_start(project=project_row, name=name, config=values, enqueue=enqueue)
        except ValidationError as invalid:
            raise CommandError(validation_message(invalid)) from invalid
        if enqueue:
            self.stdout.write(f"Queued job {job.pk} on the gpu queue.")
            return
        bar = ProgressBar(f"training {name}", self.stderr._out)
        try:
            job = reward_model_train_run(job_id=job.pk, console=bar)
        except Exception as failure:
            raise CommandError(f"Training failed: {failure}") from failure
        finally:
            bar.close()
        heldout = job.result["heldout"]
        self.stdout.write(f"Registered reward model {name!r} (job {job.pk}).")
        self.stdout.write(f"Held-out accuracy: {heldout['accuracy']:.3f} on {heldout['pairs']} pairs")
        for strength, row in heldout["per_strength"].items():
            self.stdout.write(f"  {strength:<22} {row['accuracy']:.3f}  ({row['pairs']} pairs)")
