"""manage.py register_policy: a model an OpenAI-compatible server serves, as a policy version."""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from margin.cli import validation_message
from rlhf.policies import policy_register

# The command's flags and the model's fields, in the error messages' terms.
FLAG_OF_FIELD = {"openai_base_url": "--openai-url", "served_model": "--served-model", "api_key_env": "--api-key-env",
                 "checkpoint_path": "--checkpoint", "max_in_flight": "--max-in-flight",
                 "timeout_seconds": "--timeout", "parent": "--parent", "name": "NAME"}


class Command(BaseCommand):
    help = ("Register a model served by vLLM, SGLang, TGI or any OpenAI-compatible server as a policy version "
            "(or point an existing version at it); Margin then generates its responses through the server.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="the policy version's name (an existing one is switched to the server)")
        parser.add_argument("--openai-url", required=True, help="the server's API root, e.g. http://gpu-1:8000/v1")
        parser.add_argument("--served-model", required=True, help="the model name the server serves")
        parser.add_argument("--api-key-env", default="",
                            help="NAME of the environment variable holding the API key on the workers (never the key)")
        parser.add_argument("--checkpoint", default="",
                            help="its weights in the model store: needed only to fine-tune it here (rejection sampling, PPO)")
        parser.add_argument("--parent", default="", help="the version it was trained from, if any")
        parser.add_argument("--max-in-flight", type=int, default=16, help="prompts whose request is open at once")
        parser.add_argument("--timeout", type=int, default=120, help="seconds per request")

    def handle(self, *args, **options):
        try:
            version, created = policy_register(
                name=options["name"], openai_base_url=options["openai_url"], served_model=options["served_model"],
                api_key_env=options["api_key_env"], checkpoint_path=options["checkpoint"], parent=options["parent"],
                max_in_flight=options["max_in_flight"], timeout_seconds=options["timeout"],
            )
        except ValidationError as bad:
            message = validation_message(bad)
            for field, flag in FLAG_OF_FIELD.items():
                message = message.replace(f"{field}:", f"{flag}:")
            raise CommandError(message) from bad
        verb = "registered" if created else "switched"
        self.stdout.write(self.style.SUCCESS(
            f"{verb} {version.name}: {version.served_model!r} at {version.openai_base_url}"))
