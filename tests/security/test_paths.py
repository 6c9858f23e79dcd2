"""File paths from the web stay inside allowed roots: a checkpoint named on the dashboard must lie
in settings.MARGIN_MODEL_STORE; an uploaded file's name never becomes a path; an export's file
name comes from a fixed list. (Management commands are run by the operator on the server and may
name any path; tests/rewardmodel/test_commands.py scores with a checkpoint outside the store.)"""

import json
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from annotation.models import Comparison, Dialogue
from margin.models import Job
from tests.factories import BatchFactory, JudgmentFactory, ProjectFactory
from tests.security.conftest import client_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(world):
    return client_for(world["staff"])


def _launch(staff, kind, data):
    return staff.post(reverse("dashboard:job_launch", args=[kind]), data)


OUTSIDE = ["/etc", "/", "../../../../etc", "var/../../etc", "."]


@pytest.mark.parametrize("path", OUTSIDE)
def test_a_base_model_outside_the_model_store_is_refused(staff, world, path):
    # The base model is picked from the versions with weights in the store (issue 16): a typed
    # path is never opened, and the refusal does not say whether it exists.
    JudgmentFactory(comparison=world["comparisons"][3])
    response = _launch(staff, Job.Kind.TRAIN_REWARD_MODEL,
                       {"project": world["project"].pk, "name": "rm-x", "base_model": path})
    assert response.status_code == 422
    assert f"no policy checkpoint named &#x27;{path}&#x27;; pick one from the list." in response.content.decode()
    assert not Job.objects.filter(kind=Job.Kind.TRAIN_REWARD_MODEL, params__name="rm-x").exists()


def test_a_base_model_in_the_model_store_is_accepted(staff, world, settings, tiny_model_path):
    from rlhf.models import PolicyVersion

    settings.MARGIN_MODEL_STORE = str(tiny_model_path.parent)
    PolicyVersion.objects.create(name="tiny-base", checkpoint_path=str(tiny_model_path))
    response = _launch(staff, Job.Kind.TRAIN_REWARD_MODEL,
                       {"project": world["project"].pk, "name": "rm-in", "base_model": str(tiny_model_path)})
    assert response.status_code == 302, response.content.decode()
    assert Job.objects.get(params__name="rm-in").params["config"]["base_model"] == str(tiny_model_path)


@pytest.mark.parametrize("field", ["helpfulness_rm", "safety_rm"])
@pytest.mark.parametrize("path", ["/etc", "../../../etc"])
def test_a_reward_model_path_outside_the_store_is_refused_without_probing_it(staff, world, field, path):
    """The refusal does not say whether the directory exists or holds a checkpoint."""
    response = _launch(staff, Job.Kind.REJECTION_SAMPLE, {"policy": "", field: path})
    assert response.status_code == 422
    page = response.content.decode()
    # Reward models are picked from the registered names (issue 16): no path is ever opened.
    assert f"no reward model named &#x27;{path}&#x27;" in page and "complete checkpoint" not in page
    assert not Job.objects.filter(kind=Job.Kind.REJECTION_SAMPLE).exists()


def test_an_uploaded_file_name_never_becomes_a_path(staff, world, tmp_path):
    project = BatchFactory(project=ProjectFactory(name="Uploads")).project
    for name in ("../../etc/passwd", "..\\..\\windows\\win.ini", "/tmp/abs.jsonl"):
        record = {"messages": [{"role": "user", "content": f"hi from {name}"}],
                  "responses": [{"text": "a"}, {"text": "b"}]}
        upload = SimpleUploadedFile(name, (json.dumps(record) + "\n").encode())
        response = staff.post(reverse("dataio:import"),
                              {"project": project.pk, "format": "margin", "file": upload})
        assert response.status_code == 200, response.content.decode()
    sources = list(Dialogue.objects.filter(project=project).values_list("source", flat=True))
    sources += list(Comparison.objects.filter(batch__project=project).values_list("source", flat=True))
    assert sorted(sources) == ["abs.jsonl", "abs.jsonl:1", "passwd", "passwd:1", "win.ini", "win.ini:1"]
    assert not os.path.exists("/tmp/abs.jsonl")


@pytest.mark.parametrize("field,value", [("kind", "../../etc/passwd"), ("output_format", "../x"),
                                         ("output_format", "jsonl/../../x")])
def test_an_export_file_name_comes_from_a_fixed_list(staff, world, field, value):
    params = {"projects": world["project"].pk, "kind": "trl", "output_format": "jsonl", field: value}
    response = staff.get(reverse("dataio:export"), params)
    assert response.status_code == 422
    assert "Select a valid choice" in response.content.decode()


@pytest.mark.parametrize("key", ["policy", "reward_model"])
def test_the_admin_never_takes_a_checkpoint_path(staff, world, key):
    """Checkpoints come from jobs, inside the model store; the admin shows the path, read-only."""
    from django.contrib import admin

    obj = world[key]
    page = staff.get(reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk]))
    assert page.status_code == 200
    assert 'name="checkpoint_path"' not in page.content.decode()
    form = admin.site._registry[type(obj)].get_form(page.wsgi_request, obj)
    assert "checkpoint_path" not in form.base_fields  # a crafted POST cannot set it either
