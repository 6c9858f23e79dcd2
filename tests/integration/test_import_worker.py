"""A real redis-server and a Celery worker on the `default` queue run a staff upload's import job;
the page shows its progress and then its report (issue 15 item 5)."""

import gzip
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation.models import Comparison, Project
from annotation.services import batch_open
from margin.models import Job
from tests.factories import ProjectFactory, StaffFactory
from tests.real_services import wait_until

pytestmark = pytest.mark.slow


def test_a_default_queue_worker_imports_a_large_upload_and_the_page_follows_it(start_worker):
    project = ProjectFactory(name="Helpful")
    batch = batch_open(project=project)
    staff = Client()
    staff.force_login(StaffFactory())
    rows = [{"messages": [{"role": "user", "content": f"Question {i}?"}],
             "responses": [{"text": f"A{i}"}, {"text": f"B{i}"}],
             "judgments": [{"annotator": "r1", "choice": "a", "strength": "better"}]} for i in range(600)]
    content = gzip.compress("".join(json.dumps(row) + "\n" for row in rows).encode())
    start_worker(queues="default")  # no gpu worker: the import must not wait behind training

    response = staff.post(reverse("dataio:import"), {
        "project": project.pk, "format": "margin", "file": SimpleUploadedFile("big.jsonl.gz", content)})
    job = Job.objects.get(kind=Job.Kind.IMPORT_DATA)
    assert response.status_code == 302 and response["Location"] == reverse("dataio:import_job", args=[job.pk])
    page = staff.get(response["Location"], HTTP_HX_REQUEST="true")
    assert page.status_code in (200, 286) and "records stored" in page.content.decode()

    def finished():
        job.refresh_from_db()
        return job.is_finished

    wait_until(finished, 120, "the import job")
    assert job.state == Job.State.SUCCEEDED, job.error
    assert job.attempts == 1 and job.progress_step == job.progress_total == 600
    assert Comparison.objects.filter(batch=batch).count() == 600
    assert Project.objects.count() == 1  # the staging area is gone
    page = staff.get(response["Location"], HTTP_HX_REQUEST="true")
    assert page.status_code == 286
    assert "600 comparisons, 600 judgments, 0 prompts added" in page.content.decode()
