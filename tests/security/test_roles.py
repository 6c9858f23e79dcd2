"""Staff roles (margin/roles.py): a role opens exactly its actions, the refusal names the missing
permission, `manage.py staff_role` gives and takes roles, superusers (the demo staff account)
keep everything. Which role reaches which URL is in test_permission_matrix.py."""

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.urls import reverse

from annotation.models import AnnotatorProfile, Project
from margin.roles import ROLES
from tests.factories import ProjectFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_the_migration_creates_one_group_per_role():
    for role in ROLES.values():
        group = Group.objects.get(name=role.group)
        held = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        assert held == set(role.permissions)


def test_a_viewer_reads_the_dashboard_but_cannot_pause_an_annotator(client):
    annotator = UserFactory(username="ann")
    client.force_login(StaffFactory(username="vera", roles=["viewer"]))
    assert client.get(reverse("dashboard:annotators")).status_code == 200
    response = client.post(reverse("dashboard:annotator_update", args=[annotator.pk]),
                           {"action": "pause", "reason": "too fast"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "Can manage projects, batches and annotators" in page and "dashboard.manage_projects" in page
    assert "project manager" in page
    assert not AnnotatorProfile.objects.filter(user=annotator, is_paused=True).exists()


def test_staff_without_a_role_are_told_which_permission_the_dashboard_needs(client):
    client.force_login(StaffFactory(username="nora", roles=[]))
    response = client.get(reverse("dashboard:index"))
    assert response.status_code == 403
    assert "Can view the staff dashboard" in response.content.decode()


def test_an_ml_operator_exports_but_cannot_import(client):
    client.force_login(StaffFactory(username="otto", roles=["ml_operator"]))
    assert client.get(reverse("dataio:export")).status_code == 200
    assert "Can import data" in client.get(reverse("dataio:import")).content.decode()


def test_a_superuser_without_groups_reaches_every_action(client):
    """The demo staff account is a superuser with no role group: it keeps working."""
    boss = UserFactory(username="demo-staff", is_staff=True, is_superuser=True)
    client.force_login(boss)
    for url in (reverse("dashboard:index"), reverse("dashboard:project_create"),
                reverse("dashboard:job_launch", args=["train_reward_model"]),
                reverse("dataio:import"), reverse("dataio:export")):
        assert client.get(url).status_code == 200, url


def test_staff_role_command_gives_and_takes_roles(client, capsys):
    user = UserFactory(username="pam")
    call_command("staff_role", "pam", "project_manager")
    assert "pam: project_manager" in capsys.readouterr().out
    user.refresh_from_db()
    assert user.is_staff
    client.force_login(user)
    response = client.post(reverse("dashboard:project_create"), {
        "name": "New", "objective": "helpfulness", "guidelines": "G", "judgments_per_comparison": 1,
        "margin_scheme": "none", "lease_seconds": 600, "gold_share": 0, "attention_policy": "block",
        "qualification_golds": 0, "qualification_min_accuracy": 1})
    assert response.status_code == 302 and Project.objects.filter(name="New").exists()

    call_command("staff_role", "pam", "viewer", "ml_operator")
    assert "pam: viewer, ml_operator" in capsys.readouterr().out
    assert client.get(reverse("dashboard:project_create")).status_code == 403

    call_command("staff_role", "pam", "none")
    assert "pam: no role" in capsys.readouterr().out
    assert client.get(reverse("dashboard:index")).status_code == 403


def test_staff_role_command_shows_roles_without_changing_them(capsys):
    StaffFactory(username="olga", roles=["ml_operator"])
    call_command("staff_role", "olga")
    assert "olga: ml_operator" in capsys.readouterr().out
    assert list(Group.objects.get(name="ML operator").user_set.values_list("username", flat=True)) == ["olga"]


def test_project_pages_still_reach_a_project_manager(client):
    project = ProjectFactory()
    client.force_login(StaffFactory(username="pm", roles=["project_manager"]))
    assert client.post(reverse("dashboard:batch_open", args=[project.pk])).status_code == 302
    assert project.batches.count() == 1


def test_a_viewer_is_not_offered_the_actions_of_other_roles(client):
    project = ProjectFactory()
    client.force_login(StaffFactory(username="vic", roles=["viewer"]))
    page = client.get(reverse("dashboard:project", args=[project.pk])).content.decode()
    assert "Open a new batch" not in page and reverse("dashboard:project_create") not in page
    assert reverse("dataio:import") not in page
    jobs = client.get(reverse("dashboard:jobs")).content.decode()
    assert reverse("dashboard:job_launch", args=["ppo"]) not in jobs
    client.force_login(StaffFactory(username="max"))  # every role
    page = client.get(reverse("dashboard:project", args=[project.pk])).content.decode()
    assert "Open a new batch" in page and reverse("dataio:import") in page
