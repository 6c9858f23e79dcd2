"""Import and export speed on the real data sets in ../shared/data, in a throw-away database.

    .venv/bin/python bench/dataio.py

Imports each file into a fresh SQLite database (the default configuration), imports it a second
time (must add nothing), then exports every judged comparison as TRL JSONL, parquet and Margin
JSONL. Prints a table and writes bench/results/dataio.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORKDIR = Path(tempfile.mkdtemp(prefix="margin-bench-dataio-"))
os.environ["MARGIN_VAR_DIR"] = str(WORKDIR)  # never the real database
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "margin.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from annotation.models import Project  # noqa: E402
from annotation.services import batch_open  # noqa: E402
from dataio.exports import ExportFilters, export_rows  # noqa: E402
from dataio.services import data_import  # noqa: E402
from dataio.staging import SQLITE_PAUSE_SECONDS  # noqa: E402
from dataio.writers import rows_write  # noqa: E402

DATA = settings.MARGIN_SHARED_DATA
FILES = [  # (file, format, objective)
    ("hh-rlhf-harmless/harmless-base.dev.jsonl.gz", "hh", "safety"),
    ("pandalm/testset-v1.json", "pandalm", "helpfulness"),
    ("tulu1-human-eval/annotations.jsonl", "tulu", "helpfulness"),
    ("autoj-pairwise/autoj_pairwise.jsonl.gz", "autoj", "helpfulness"),
]
RESULTS = REPO / "bench" / "results" / "dataio.json"


def timed(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def main():
    call_command("migrate", verbosity=0)
    rows = []
    for name, fmt, objective in FILES:
        project = Project.objects.create(name=fmt, objective=objective, guidelines="bench")
        batch_open(project=project)

        ticks = []  # when each chunk's transaction had committed (the import pauses after each)

        def run():
            ticks.clear()
            with open(DATA / name, "rb") as stream:
                return data_import(project=project, stream=stream, fmt=fmt, skip_invalid=True, source_name=name,
                                   on_progress=lambda step, total: ticks.append(time.perf_counter()))

        first, seconds = timed(run)
        ended = time.perf_counter()
        # The write lock is held a chunk at a time, then once to publish: the longest waits an annotator can see.
        chunks = [b - a - SQLITE_PAUSE_SECONDS for a, b in zip(ticks, ticks[1:])]
        longest_chunk, publish = max(chunks, default=0.0), ended - ticks[-1] - SQLITE_PAUSE_SECONDS
        again, seconds_again = timed(run)
        assert not again.added_anything, "re-import added data"
        rows.append({
            "file": name, "format": fmt, "records": first.records, "comparisons": first.comparisons_added,
            "judgments": first.judgments_added, "invalid": first.invalid,
            "import_s": round(seconds, 2), "records_per_s": round(first.records / seconds),
            "longest_chunk_s": round(longest_chunk, 3), "publish_s": round(publish, 3),
            "reimport_s": round(seconds_again, 2),
        })
    projects = list(Project.objects.all())
    exports = []
    for kind, output_format in (("trl", "jsonl"), ("trl", "parquet"), ("margin", "jsonl")):
        destination = WORKDIR / f"export-{kind}.{output_format}"

        def run():
            found, _ = export_rows(kind, ExportFilters(projects=projects))
            return rows_write(found, destination, output_format)

        written, seconds = timed(run)
        exports.append({"kind": kind, "as": output_format, "rows": written, "seconds": round(seconds, 2),
                        "rows_per_s": round(written / seconds), "bytes": destination.stat().st_size})

    print(f"{'file':48} {'records':>7} {'pairs':>6} {'labels':>6} {'bad':>4} {'import s':>8} {'rec/s':>6} "
          f"{'chunk s':>7} {'publish s':>9} {'again s':>7}")
    for r in rows:
        print(f"{r['file']:48} {r['records']:>7} {r['comparisons']:>6} {r['judgments']:>6} {r['invalid']:>4} "
              f"{r['import_s']:>8} {r['records_per_s']:>6} {r['longest_chunk_s']:>7} {r['publish_s']:>9} "
              f"{r['reimport_s']:>7}")
    print()
    print(f"{'export':18} {'rows':>6} {'seconds':>8} {'rows/s':>7} {'MB':>6}")
    for e in exports:
        print(f"{e['kind'] + ' ' + e['as']:18} {e['rows']:>6} {e['seconds']:>8} {e['rows_per_s']:>7} "
              f"{e['bytes'] / 2**20:>6.1f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "database": "SQLite (WAL)", "imports": rows, "exports": exports,
    }, indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
