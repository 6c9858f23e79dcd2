from django.core.management.base import BaseCommand, CommandError

from core.jsonio import RecordError, utf8_check
from margin.cli import ProgressBar
from modelruntime.modelstore import ModelStoreError
from rewardmodel.scoring import load_scorer, read_scoring_input, score_file


class Command(BaseCommand):
    help = (
        "Score assistant responses with a reward model. Each input line is "
        '{"id": ..., "messages": [{"role": "user"|"assistant"|"system", "content": ...}, ...]} '
        'whose last message is the response to score; each output line is the input plus "score".'
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="registered reward model name or checkpoint path")
        parser.add_argument("--input", required=True, help="JSONL file to score")
        parser.add_argument("--output", required=True, help="JSONL file to write")
        parser.add_argument("--batch-size", type=int, default=8)

    def handle(self, *args, model, input, output, batch_size, **options):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        try:
            utf8_check(input)  # a file that is not UTF-8 says so before any record is checked
            read_scoring_input(input)  # a bad file fails before the model loads
            scorer = load_scorer(model)
        except FileNotFoundError as missing:
            raise CommandError(f"Cannot read --input: {missing}") from missing
        except RecordError as bad:
            raise CommandError(f"{input}, {bad}") from bad
        except ModelStoreError as bad:
            raise CommandError(str(bad)) from bad
        bar = ProgressBar("scoring", self.stderr._out)
        try:
            count = score_file(scorer, input, output, batch_size=batch_size, on_progress=bar)
        except OSError as problem:
            raise CommandError(f"Cannot write --output: {problem}") from problem
        finally:
            bar.close()
        self.stdout.write(f"Scored {count} responses into {output}.")
