"""Large uploads run as an IMPORT_DATA job on the `default` queue: the file waits under
VAR_DIR/imports (never in the database), the worker imports it through the same staged path as
the command, reports progress per chunk on the job row, and leaves the report in `job.result`.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from django.conf import settings
from django.db import transaction

from annotation.models import Project
from dataio.services import ImportRejected, data_import
from margin.jobs import job_create, job_run
from margin.models import Job

UPLOADS_FOLDER = "imports"
INLINE_MAX_BYTES = 256 * 2**10  # ~300 records: imported while the page waits, in a few seconds


def import_runs_as_job(*, upload) -> bool:
    """A gzip file, or one over MARGIN_IMPORT_INLINE_MAX_BYTES, is imported by a worker: the
    page would otherwise wait for it (tens of seconds for ten thousand records)."""
    limit = getattr(settings, "MARGIN_IMPORT_INLINE_MAX_BYTES", INLINE_MAX_BYTES)
    upload.seek(0)
    gzipped = upload.read(2) == b"\x1f\x8b"
    upload.seek(0)
    return gzipped or upload.size > limit


def upload_save(*, upload) -> Path:
    """Copy an uploaded file under VAR_DIR/imports with a name of our own (the client's name is
    kept only as the import's source, never as a path)."""
    folder = Path(settings.VAR_DIR) / UPLOADS_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.upload"
    upload.seek(0)
    with open(path, "wb") as out:
        shutil.copyfileobj(upload, out, 2**20)
    return path


def import_job_start(*, upload, project, fmt, actor=None, batch_number=None, mapping=None,
                     source_name="", skip_invalid=False, queue_judged=False, adversarial=False,
                     max_file_bytes=None):
    """Save the upload and queue its import; returns the job (sent once this transaction commits)."""
    path = upload_save(upload=upload)
    params = {
        "path": str(path), "project_id": project.pk, "format": fmt, "batch": batch_number,
        "mapping": mapping or {}, "source_name": source_name, "skip_invalid": skip_invalid,
        "queue_judged": queue_judged, "adversarial": adversarial, "max_file_bytes": max_file_bytes,
    }
    with transaction.atomic():
        return job_create(kind=Job.Kind.IMPORT_DATA, params=params, created_by=actor)


def import_job_run(*, job_id):
    """The worker's side: claim the job, import its file, record the report (or the refusal)."""
    return job_run(job_id=job_id, kind=Job.Kind.IMPORT_DATA, work=_import_work)


def _import_work(job, on_progress):
    params = job.params
    path = Path(params["path"])
    try:
        if path.parent != Path(settings.VAR_DIR) / UPLOADS_FOLDER or not path.is_file():
            raise ImportRejected(f"The uploaded file of {params['source_name']} is gone; upload it again.")
        with open(path, "rb") as stream:
            report = data_import(
                project=Project.objects.get(pk=params["project_id"]), stream=stream,
                fmt=params["format"], batch_number=params["batch"], mapping=params["mapping"],
                source_name=params["source_name"], skip_invalid=params["skip_invalid"],
                queue_judged=params["queue_judged"], adversarial=params["adversarial"],
                actor=job.created_by, on_progress=on_progress,
                max_file_bytes=params["max_file_bytes"], staging_key=f"job {job.pk}",
            )
    except ImportRejected as rejected:
        # The page shows the report of a refused file too (its errors by line); the job fails.
        report = rejected.report.to_dict() if rejected.report else {}
        Job.objects.filter(pk=job.pk).update(result=report)
        path.unlink(missing_ok=True)  # the same file would be refused again
        raise
    # Kept after another failure or a cancel, so that a retry can read it again.
    path.unlink(missing_ok=True)
    return report.to_dict()
