"""manage.py serve_policy: the exact `vllm serve` command that serves a policy version Margin made."""

import shlex

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from margin.cli import validation_message
from rlhf.models import PolicyVersion
from rlhf.policies import policy_serve_command


class Command(BaseCommand):
    help = ("Print the `vllm serve` command for a policy version's checkpoint (a full checkpoint, or a LoRA "
            "adapter over its base); then `register_policy NAME --openai-url ... --served-model NAME`.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the policy version")
        parser.add_argument("--host", default="0.0.0.0")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, **options):
        version = PolicyVersion.objects.filter(name=options["name"]).first()
        if version is None:
            raise CommandError(f"NAME: no policy version named {options['name']!r}")
        try:
            command = policy_serve_command(version=version, host=options["host"], port=options["port"])
        except ValidationError as bad:
            raise CommandError(validation_message(bad)) from bad
        self.stdout.write(shlex.join(command))
