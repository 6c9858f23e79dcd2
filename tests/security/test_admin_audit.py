"""The admin leaves a trail (issue 15): edits and deletions of judgments, comparisons and
annotator profiles write an AuditEvent; audit events themselves cannot be edited or deleted."""

import pytest
from django.contrib import admin
from django.forms import CheckboxInput, NullBooleanSelect
from django.test import RequestFactory
from django.urls import reverse

from annotation.models import AnnotatorProfile, AuditEvent, Comparison, Judgment
from tests.factories import ComparisonFactory, JudgmentFactory, StaffFactory, UserFactory

pytestmark = pytest.mark.django_db
NULL_BOOLEAN = {True: "true", False: "false", None: "unknown"}


@pytest.fixture
def boss(client):
    user = StaffFactory(username="boss", is_superuser=True)
    client.force_login(user)
    return user


def change_form_data(obj, user, **changes):
    """What the admin's change form posts for `obj` untouched, then `changes` on top."""
    request = RequestFactory().get("/")
    request.user = user
    form = admin.site._registry[type(obj)].get_form(request, obj)(instance=obj)
    data = {}
    for bound in form:
        value, widget = bound.value(), bound.field.widget
        if isinstance(widget, NullBooleanSelect):
            data[bound.name] = NULL_BOOLEAN[value]
        elif isinstance(widget, CheckboxInput):
            if value:
                data[bound.name] = "on"
        else:
            data[bound.name] = "" if value is None else value
        if bound.field.show_hidden_initial:  # fields with a callable default, as the page has
            data[bound.html_initial_name] = data.get(bound.name, "")
    return {**data, **changes, "_save": "Save"}


def admin_url(obj, action):
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_{action}", args=[obj.pk])


def test_changing_a_judgment_in_the_admin_is_audited(client, boss):
    judgment = JudgmentFactory(comparison=ComparisonFactory(), strength="better")
    response = client.post(admin_url(judgment, "change"),
                           change_form_data(judgment, boss, strength="slightly_better"))
    assert response.status_code == 302
    judgment.refresh_from_db()
    assert judgment.strength == "slightly_better"
    event = AuditEvent.objects.get(verb="admin_change")
    assert (event.actor, event.object_type, event.object_id) == (boss, "Judgment", judgment.pk)
    assert event.data["changed"] == {"strength": ["better", "slightly_better"]}


def test_pausing_an_annotator_in_the_admin_is_audited(client, boss):
    profile = AnnotatorProfile.objects.create(user=UserFactory(username="ann"))
    client.post(admin_url(profile, "change"), change_form_data(profile, boss, is_paused="on"))
    assert AnnotatorProfile.objects.get(pk=profile.pk).is_paused
    event = AuditEvent.objects.get(verb="admin_change", object_type="AnnotatorProfile")
    assert event.data["changed"] == {"is_paused": [False, True]}


def test_deleting_a_comparison_in_the_admin_keeps_a_copy_in_the_audit_trail(client, boss):
    comparison = ComparisonFactory()
    response = client.post(admin_url(comparison, "delete"), {"post": "yes"})
    assert response.status_code == 302 and not Comparison.objects.filter(pk=comparison.pk).exists()
    event = AuditEvent.objects.get(verb="admin_delete")
    assert (event.object_type, event.object_id, event.actor) == ("Comparison", comparison.pk, boss)
    assert event.data["row"]["response_a"] == comparison.response_a_id


def test_bulk_deleting_judgments_audits_each_one(client, boss):
    judgments = [JudgmentFactory(comparison=ComparisonFactory()) for _ in range(2)]
    client.post(reverse("admin:annotation_judgment_changelist"), {
        "action": "delete_selected", "_selected_action": [j.pk for j in judgments], "post": "yes"})
    assert not Judgment.objects.exists()
    deleted = AuditEvent.objects.filter(verb="admin_delete", object_type="Judgment")
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted(j.pk for j in judgments)


def test_audit_events_cannot_be_deleted_or_edited_even_by_a_superuser(client, boss):
    event = AuditEvent.objects.create(actor=boss, verb="batch_open", object_type="Batch",
                                      object_id=1, data={"note": "kept"})
    assert client.post(admin_url(event, "delete"), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:annotation_auditevent_changelist"),
                {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"})
    client.post(admin_url(event, "change"), {"verb": "nothing", "data": "{}"})
    event.refresh_from_db()
    assert (event.verb, event.data) == ("batch_open", {"note": "kept"})
    changelist = client.get(reverse("admin:annotation_auditevent_changelist")).content.decode()
    assert "delete_selected" not in changelist
