from django.core.management.base import BaseCommand, CommandError

from dataio.services import ImportRejected
from margin import demo

DEMO_PROMPTS = [
    "Give me three tips for writing a clear bug report.",
    "Explain what a hash table is to a new programmer.",
    "Write a short, friendly reminder email about a team meeting on Friday.",
    "What should I pack for a two-day hike in autumn?",
]


class Command(BaseCommand):
    help = "Create the demo accounts and the demo helpfulness and safety projects."

    def add_arguments(self, parser):
        parser.add_argument("--pairs", type=int, default=20, help="imported pairs per project")
        parser.add_argument(
            "--generate", type=int, default=0,
            help="also queue this many model-generated pairs (needs a running worker)",
        )
        parser.add_argument(
            "--no-reward-model", action="store_true",
            help="do not import the labelled pairs nor queue the demo's reward-model training",
        )

    def handle(self, *args, pairs, generate, no_reward_model, **options):
        if pairs < 0 or generate < 0:
            raise CommandError("--pairs and --generate must be zero or more.")
        accounts = demo.accounts_create()
        try:
            helpful, _, added = demo.projects_seed(pairs_per_project=pairs)
            if not no_reward_model:
                labelled, labelled_added = demo.labelled_project_seed()
                added[labelled.name] = labelled_added
        except (OSError, ImportRejected) as problem:
            raise CommandError(f"Could not read the demo data: {problem}") from problem
        for name, count in added.items():
            self.stdout.write(f"{name}: {count} new comparisons")
        if not no_reward_model:
            job = demo.reward_model_enqueue(project=labelled)
            if job is not None:
                self.stdout.write(f"Queued job {job.pk}: train {demo.REWARD_MODEL_NAME} on {labelled.name} "
                                  "(the gpu worker; a few minutes on a CPU; then see Dashboard > Models).")
        if generate:
            prompts = (DEMO_PROMPTS * (generate // len(DEMO_PROMPTS) + 1))[:generate]
            jobs = demo.generation_enqueue(project=helpful, prompts=prompts)
            self.stdout.write(f"Queued {len(jobs)} generation jobs for {helpful.name}.")
        self.stdout.write(self.style.SUCCESS("Demo accounts (change these passwords outside a demo):"))
        for username, password in accounts.items():
            self.stdout.write(f"  {username} / {password}")
