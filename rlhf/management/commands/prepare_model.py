from django.core.management.base import BaseCommand

from rlhf.pairs import policy_version_default


class Command(BaseCommand):
    help = "Convert the default model (SmolLM2-135M-Instruct GGUF) once into the model store."

    def handle(self, *args, **options):
        self.stdout.write("Preparing the default model (first time: about 30 s)...")
        version = policy_version_default()
        self.stdout.write(self.style.SUCCESS(f"{version.name}: {version.checkpoint_path}"))
