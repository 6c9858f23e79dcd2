"""Staff pages: upload a preference-data file (a large one runs as a job), download an export."""

import tempfile
from pathlib import Path

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.services import AnnotationError
from dataio.exports import ExportFilters, export_rows
from dataio.forms import ExportForm, ImportForm
from dataio.import_jobs import import_job_start, import_runs_as_job
from dataio.services import ImportRejected, data_import
from dataio.writers import ExportError, rows_write
from margin.models import Job
from margin.roles import EXPORT_DATA, IMPORT_DATA, staff_required


@staff_required(IMPORT_DATA)
@require_http_methods(["GET", "POST"])
def import_page(request):
    bound = request.method == "POST"  # an empty POST is a form with every field missing
    form = ImportForm(request.POST if bound else None, request.FILES if bound else None)
    context, status = {"form": form}, 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            options = dict(
                project=data["project"], fmt=data["format"], batch_number=data["batch"],
                mapping=data["mapping"], source_name=data["file"].name, skip_invalid=data["skip_invalid"],
                queue_judged=data["queue_judged"], adversarial=data["adversarial"], actor=request.user,
                max_file_bytes=settings.MARGIN_UPLOAD_MAX_BYTES,  # once decompressed too
            )
            if import_runs_as_job(upload=data["file"]):
                job = import_job_start(upload=data["file"], **options)
                return redirect("dataio:import_job", job_id=job.pk)
            try:
                context["report"] = data_import(stream=data["file"].file, **options)
            except ImportRejected as rejected:
                context.update(error=str(rejected), report=rejected.report)
                status = 422
            except AnnotationError as refused:
                context["error"], status = str(refused), 422
        else:
            status = 422
    return render(request, "dataio/import.html", context, status=status)


@staff_required(IMPORT_DATA)
@require_GET
def import_job_page(request, job_id):
    """An import running as a job: progress polled every 2 s (286 stops htmx once it has
    finished), then the report."""
    job = get_object_or_404(Job, pk=job_id, kind=Job.Kind.IMPORT_DATA)
    context = {"job": job, "report": job.result or None, "error": job.error.partition(": ")[2] or job.error}
    if request.htmx:
        return render(request, "dataio/import_job.html#import-job", context, status=286 if job.is_finished else 200)
    return render(request, "dataio/import_job.html", context)


@staff_required(EXPORT_DATA)
@require_GET
def export_page(request):
    form = ExportForm(request.GET if "projects" in request.GET else None)
    if not form.is_bound or not form.is_valid():
        return render(request, "dataio/export.html", {"form": form}, status=422 if form.is_bound else 200)
    data = form.cleaned_data
    try:
        filters = ExportFilters(
            projects=list(data["projects"]), batches=data["batches"], objective=data["objective"],
            min_agreement=data["min_agreement"] or 0.0,
            exclude_annotators=data["exclude_annotators"], margin_scheme=data["margin_scheme"],
        )
        suffix = data["output_format"]
        path = Path(tempfile.mkdtemp(prefix="margin-export-")) / f"margin-{data['kind']}.{suffix}"
        rows, _ = export_rows(data["kind"], filters)
        rows_write(rows, path, data["output_format"])
    except ExportError as bad:
        return render(request, "dataio/export.html", {"form": form, "error": str(bad)}, status=422)
    # The temporary file is unlinked once opened; the open handle streams it (POSIX).
    handle = open(path, "rb")
    path.unlink()
    path.parent.rmdir()
    return FileResponse(handle, as_attachment=True, filename=path.name)
