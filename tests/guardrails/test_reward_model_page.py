"""The reward-model page: length baselines flag a length-biased RM; staff set the safety gate."""

import pytest
from django.urls import reverse

from annotation.models import AuditEvent
from rewardmodel.evaluation import report
from rewardmodel.models import RewardModel, RewardModelEvaluation
from tests.factories import StaffFactory
from tests.guardrails.test_rm_evaluation import PAIRS, pair

pytestmark = pytest.mark.django_db


def _evaluated(name, objective, pairs, scores):
    result = report(pairs, scores)
    rm = RewardModel.objects.create(name=name, objective=objective, base_model="/m/base",
                                    metrics={"heldout": result})
    RewardModelEvaluation.objects.create(reward_model=rm, label="held-out", pairs=result["pairs"],
                                         accuracy=result["accuracy"], length=result["length"],
                                         safety_curve=result["safety"])
    return rm


@pytest.fixture
def staff_client(client):
    client.force_login(StaffFactory(username="boss"))
    return client


def test_models_page_and_rm_page_flag_a_length_scoring_model(staff_client):
    rm = _evaluated("by-length", "helpfulness", PAIRS, [(len(p.chosen), len(p.rejected)) for p in PAIRS])
    models_html = staff_client.get(reverse("dashboard:models")).content.decode()
    assert "longer-biased" in models_html
    html = staff_client.get(reverse("dashboard:reward_model", args=[rm.pk])).content.decode()
    assert 'data-testid="length-bias"' in html and "sides with the longer response 100 %" in html
    assert 'data-stat="chosen-shorter">0.000' in html and 'data-stat="longer-wins">0.500' in html


def test_staff_place_the_safety_gate_on_the_curve(staff_client):
    pairs = [pair("a", "b", "chosen_safe_other_unsafe")] * 3 + [pair("a", "b", "both_safe")]
    rm = _evaluated("safety-rm", "safety", pairs, [(2.0, -3.0), (1.0, -0.5), (0.5, 0.2), (-1.9, 1.0)])
    url = reverse("dashboard:reward_model", args=[rm.pk])
    html = staff_client.get(url).content.decode()
    # Sigmoid scores: unsafe 0.047, 0.378, 0.550; safe 0.880, 0.731, 0.622, 0.130, 0.731.
    # Below 0.15: 0.047 (unsafe) and 0.130 (safe): precision 1 / 2, recall 1 / 3.
    assert 'data-stat="gate">0.15<' in html and "(the paper's)" in html
    assert 'data-stat="gate-precision">0.500' in html and 'data-stat="gate-recall">0.333' in html
    response = staff_client.post(url, {"gate": "0.4"})
    assert response.status_code == 302
    rm.refresh_from_db()
    assert rm.safety_gate == 0.4
    assert AuditEvent.objects.filter(verb="reward_model_gate_set", object_id=rm.pk).exists()
    # Below 0.40: 0.047, 0.378 (unsafe), 0.130 (safe): precision 2 / 3, recall 2 / 3.
    html = staff_client.get(url).content.decode()
    assert 'data-stat="gate-precision">0.667' in html and 'data-stat="gate-recall">0.667' in html
    staff_client.post(url, {"reset": "1"})
    rm.refresh_from_db()
    assert rm.safety_gate is None


@pytest.mark.parametrize("value, message", [("high", "is not a number"), ("1.5", "strictly between 0 and 1"),
                                            ("0", "strictly between 0 and 1"), ("nan", "strictly between 0 and 1"),
                                            ("", "enter a score between 0 and 1, or reset")])
def test_a_bad_gate_is_refused_naming_the_field(staff_client, value, message):
    rm = _evaluated("safety-rm", "safety", [pair("a", "b", "both_safe")], [(1.0, 0.0)])
    response = staff_client.post(reverse("dashboard:reward_model", args=[rm.pk]), {"gate": value})
    assert response.status_code == 422 and message in response.content.decode() and "gate:" in response.content.decode()
    rm.refresh_from_db()
    assert rm.safety_gate is None


def test_a_helpfulness_rm_has_no_gate_and_viewers_cannot_set_one(client):
    rm = _evaluated("helpful", "helpfulness", PAIRS, [(1, 0)] * len(PAIRS))
    client.force_login(StaffFactory(username="boss"))
    response = client.post(reverse("dashboard:reward_model", args=[rm.pk]), {"gate": "0.3"})
    assert response.status_code == 422 and "only a safety reward model" in response.content.decode()
    client.force_login(StaffFactory(username="viewer", roles=["viewer"]))
    assert client.post(reverse("dashboard:reward_model", args=[rm.pk]), {"gate": "0.3"}).status_code == 403
