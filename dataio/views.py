"""Staff pages: upload a preference-data file, download an export."""

import tempfile
from pathlib import Path

from django.http import FileResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_http_methods

from annotation.services import AnnotationError
from dataio.exports import ExportFilters, export_rows
from dataio.forms import ExportForm, ImportForm
from dataio.services import ImportRejected, data_import
from dataio.writers import ExportError, rows_write
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
            try:
                context["report"] = data_import(
                    project=data["project"], stream=data["file"].file, fmt=data["format"],
                    batch_number=data["batch"], mapping=data["mapping"], source_name=data["file"].name,
                    skip_invalid=data["skip_invalid"], queue_judged=data["queue_judged"],
                    adversarial=data["adversarial"], actor=request.user,
                )
            except ImportRejected as rejected:
                context.update(error=str(rejected), report=rejected.report)
                status = 422
            except AnnotationError as refused:
                context["error"], status = str(refused), 422
        else:
            status = 422
    return render(request, "dataio/import.html", context, status=status)


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
