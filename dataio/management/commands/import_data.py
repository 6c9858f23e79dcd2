import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import Project
from annotation.services import AnnotationError
from dataio.formats import PARSERS, mapping_parse
from dataio.services import ImportRejected, data_import
from margin.cli import ProgressBar


class Command(BaseCommand):
    help = (
        "Import preference data (prompts, pairs, judgments) into a project. All or nothing unless "
        "--skip-invalid; importing the same file again adds nothing. Formats: docs/dataio.md."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="JSON Lines (.jsonl, .jsonl.gz) or a JSON array")
        parser.add_argument("--project", required=True, help="project name")
        parser.add_argument("--format", required=True, choices=sorted(PARSERS), dest="fmt")
        parser.add_argument("--batch", type=int, help="existing batch number (default: the open one)")
        parser.add_argument(
            "--map", default="", dest="mapping",
            help="field names, e.g. prompt=question,response_a=answer1,response_b=answer2,label=winner",
        )
        parser.add_argument("--skip-invalid", action="store_true", help="import the valid records, report the rest")
        parser.add_argument(
            "--queue-judged", action="store_true",
            help="also serve judged imported pairs to our annotators (default: they count as complete)",
        )
        parser.add_argument("--adversarial", action="store_true", help="tag the prompts as adversarial (red teaming)")
        parser.add_argument("--dry-run", action="store_true", help="check and count, then store nothing")

    def handle(self, *args, file, project, fmt, batch, mapping, skip_invalid, queue_judged, adversarial, dry_run, **options):
        target = Project.objects.filter(name=project).first()
        if target is None:
            raise CommandError(f"No project named “{project}”.")
        if not file.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            fields = mapping_parse(mapping)
        except ValueError as bad:
            raise CommandError(f"--map: {bad}") from bad
        progress = ProgressBar("storing", self.stderr if options["verbosity"] else io.StringIO())
        try:
            with open(file, "rb") as stream:
                report = data_import(
                    project=target, stream=stream, fmt=fmt, batch_number=batch, mapping=fields,
                    source_name=file.name, skip_invalid=skip_invalid, queue_judged=queue_judged,
                    adversarial=adversarial, dry_run=dry_run, on_progress=progress,
                )
        except ImportRejected as rejected:
            raise CommandError("\n".join([str(rejected), *_errors(rejected.report)])) from rejected
        except AnnotationError as refused:
            raise CommandError(str(refused)) from refused
        finally:
            progress.close()
        for line in _errors(report):
            self.stderr.write(f"skipped: {line}")
        verb = "would be added (dry run: nothing stored)" if dry_run else "added"
        self.stdout.write(self.style.SUCCESS(
            f"{file.name} → {target.name}, batch {report.batch}: {report.comparisons_added} comparisons, "
            f"{report.judgments_added} judgments, {report.prompts_added} prompts {verb}; "
            f"{report.already_present} already present, {report.merged_in_file} rows merged into "
            f"an earlier row of the same pair, {report.invalid} invalid skipped, {report.blank} blank rows."
        ))


def _errors(report):
    if report is None:
        return []
    lines = list(report.errors)
    if report.invalid > len(lines):
        lines.append(f"... and {report.invalid - len(lines)} more")
    return lines
