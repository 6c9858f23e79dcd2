import io
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotation.models import MarginScheme, Objective, Project
from dataio.exports import EXPORT_KINDS, ExportFilters, export_rows
from dataio.writers import OUTPUT_FORMATS, ExportError, rows_write
from margin.cli import ProgressBar
from rlhf.models import PolicyVersion


class Command(BaseCommand):
    help = (
        "Export judged comparisons as TRL preference data (prompt / chosen / rejected + margin), "
        "everything as Margin JSONL (lossless, re-importable), or demonstrations and rejection-"
        "sampling winners as chat-format SFT data."
    )

    def add_arguments(self, parser):
        parser.add_argument("output", type=Path, help="file (jsonl, parquet) or folder (datasets)")
        parser.add_argument("--project", action="append", default=[], help="project name (repeatable)")
        parser.add_argument(
            "--policy-version", action="append", default=[],
            help="--kind sft: also the rejection-sampling winners of this policy version (repeatable)",
        )
        parser.add_argument("--kind", choices=EXPORT_KINDS, default="trl")
        parser.add_argument("--as", dest="output_format", choices=OUTPUT_FORMATS, default="jsonl")
        parser.add_argument("--batch", type=int, action="append", default=[], help="batch number (repeatable)")
        parser.add_argument("--objective", choices=Objective.values, default="")
        parser.add_argument("--min-agreement", type=float, default=0.0, help="0..1, share of votes on the majority side")
        parser.add_argument(
            "--exclude-annotator", action="append", default=[],
            help="username, exported pseudonym or imported rater id (repeatable)",
        )
        parser.add_argument("--margin-scheme", choices=MarginScheme.values, default="")

    def handle(self, *args, output, project, kind, output_format, batch, objective, min_agreement,
               exclude_annotator, margin_scheme, policy_version, **options):
        projects = list(Project.objects.filter(name__in=project))
        missing = sorted(set(project) - {p.name for p in projects})
        if missing:
            raise CommandError(f"No project named {', '.join(f'“{m}”' for m in missing)}.")
        versions = list(PolicyVersion.objects.filter(name__in=policy_version))
        missing = sorted(set(policy_version) - {v.name for v in versions})
        if missing:
            raise CommandError(f"No policy version named {', '.join(f'“{m}”' for m in missing)}.")
        if versions and kind != "sft":
            raise CommandError("--policy-version goes with --kind sft (rejection-sampling winners).")
        progress = ProgressBar("writing", self.stderr if options["verbosity"] else io.StringIO())
        try:
            filters = ExportFilters(
                projects=projects, batches=batch, objective=objective, min_agreement=min_agreement,
                exclude_annotators=exclude_annotator, margin_scheme=margin_scheme,
                policy_versions=versions,
            )
            rows, skipped = export_rows(kind, filters)
            written = rows_write(rows, output, output_format, on_progress=progress)
        except ExportError as bad:
            raise CommandError(str(bad)) from bad
        finally:
            progress.close()
        note = f" (left out: {', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))})" if skipped else ""
        self.stdout.write(self.style.SUCCESS(f"Wrote {written} {kind} rows to {output}{note}."))
