from django.core.management.base import BaseCommand, CommandError

from core.jsonio import RecordError
from rlhf.safety_eval import safety_prompts_import


class Command(BaseCommand):
    help = ("Import adversarial prompts for evaluate_safety from a JSONL file (.gz too). Each line: "
            '{"prompt": "...", "category": "..."}; multi-turn {"messages": [...ending with a user turn], '
            '"category": "..."}; or an HH-RLHF row (its "chosen" dialogue up to the last Human turn). '
            "All lines or none are imported; a prompt already stored is not added twice.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--category", default="", help="risk category of lines that name none (HH rows)")
        parser.add_argument("--source", default="", help="where the prompts come from (default: the file's name)")
        parser.add_argument("--limit", type=int, default=None, help="import at most this many prompts")

    def handle(self, *args, **options):
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError(f"--limit must be at least 1, got {options['limit']}")
        try:
            counts = safety_prompts_import(path=options["file"], category=options["category"],
                                           source=options["source"], limit=options["limit"])
        except OSError as bad:
            raise CommandError(f"cannot read {options['file']}: {bad.strerror or bad}") from bad
        except RecordError as bad:
            raise CommandError(f"{options['file']}, {bad}; nothing was imported") from bad
        self.stdout.write(f"{counts['created']} safety prompts added, {counts['existing']} already there "
                          f"({counts['read']} read)")
