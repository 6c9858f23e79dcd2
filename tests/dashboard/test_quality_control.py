"""Quality control seen from the annotator's side: pause, gold mixed silently into queues,
attention checks (warn / block), and the qualification round."""

import pytest
from django.urls import reverse

from annotation.models import AnnotatorProfile, Assignment, Judgment
from tests.factories import ComparisonFactory, ProjectFactory, UserFactory


@pytest.fixture
def project(db):
    return ProjectFactory(judgments_per_comparison=1, gold_share=0.0)


def _serve(client, project):
    """Open the compare page; return the comparison the annotator was given (or None) and the page."""
    response = client.get(reverse("annotation:compare", args=[project.pk]))
    assignment = Assignment.objects.filter(
        annotator=response.wsgi_request.user, status=Assignment.Status.OPEN
    ).first()
    return (assignment.comparison if assignment else None), response.content.decode()


def _answer(client, comparison, side):
    """Pick response `side` (a or b) whatever order it was shown in."""
    assignment = Assignment.objects.get(
        comparison=comparison, annotator_id=client.session["_auth_user_id"],
        status=Assignment.Status.OPEN,
    )
    shown_left = "a" if assignment.a_on_left else "b"
    data = {"choice": "left" if side == shown_left else "right", "strength": "better"}
    return client.post(reverse("annotation:judge", args=[comparison.pk]), data, HTTP_HX_REQUEST="true")


def test_paused_annotator_gets_no_new_work(client, project):
    ComparisonFactory(batch__project=project)
    user = UserFactory()
    AnnotatorProfile.objects.create(user=user, is_paused=True, paused_reason="checking speed")
    client.force_login(user)
    comparison, html = _serve(client, project)
    assert comparison is None
    assert "Staff paused your annotation work (checking speed)" in html


def test_gold_is_served_at_the_projects_share_and_to_everyone(client, project):
    plain = ComparisonFactory(batch__project=project, judgments_wanted=5)
    gold = ComparisonFactory(batch=plain.batch, is_gold=True, gold_choice="a")
    project.gold_share = 1.0
    project.save()
    for n in range(3):  # every annotator gets the gold one first, although it wants 1 judgment
        client.force_login(UserFactory())
        comparison, html = _serve(client, project)
        assert comparison == gold
        assert "gold" not in html.lower()  # silent: nothing on the page tells it apart
        _answer(client, gold, "a")
    assert Judgment.objects.filter(comparison=gold).count() == 3
    project.gold_share = 0.0
    project.save()
    client.force_login(UserFactory())
    assert _serve(client, project)[0] == plain


@pytest.mark.parametrize("policy", ["warn", "block"])
def test_missed_attention_check(client, project, policy):
    project.attention_policy = policy
    project.gold_share = 1.0
    project.save()
    check = ComparisonFactory(batch__project=project, is_gold=True, is_attention_check=True,
                              gold_choice="a")
    ComparisonFactory(batch=check.batch)
    user = UserFactory()
    client.force_login(user)
    assert _serve(client, project)[0] == check
    html = _answer(client, check, "b").content.decode()
    assert "That was an attention check" in html
    profile = AnnotatorProfile.objects.get(user=user)
    assert profile.attention_failures == 1
    assert Judgment.objects.filter(comparison=check, annotator=user).exists()
    if policy == "block":
        assert profile.is_paused and "Staff paused your annotation work" in html
        assert not Assignment.objects.filter(status=Assignment.Status.OPEN).exists()
    else:
        assert not profile.is_paused
        assert Assignment.objects.filter(annotator=user, status=Assignment.Status.OPEN).exists()


def test_a_right_answer_on_an_attention_check_changes_nothing(client, project):
    check = ComparisonFactory(batch__project=project, is_gold=True, is_attention_check=True,
                              gold_choice="b")
    user = UserFactory()
    client.force_login(user)
    _serve(client, project)
    assert "attention check" not in _answer(client, check, "b").content.decode()
    assert not AnnotatorProfile.objects.filter(user=user, attention_failures__gt=0).exists()


def test_qualification_round_serves_golds_first_and_stops_those_who_fail(client, project):
    project.qualification_golds = 2
    project.qualification_min_accuracy = 1.0
    project.gold_share = 0.0
    project.save()
    plain = ComparisonFactory(batch__project=project, judgments_wanted=5)
    golds = [ComparisonFactory(batch=plain.batch, is_gold=True, gold_choice="a") for _ in range(2)]

    client.force_login(UserFactory(username="careful"))
    for _ in golds:
        comparison, _html = _serve(client, project)
        assert comparison in golds  # gold only while qualifying, though gold_share is 0
        _answer(client, comparison, "a")
    assert _serve(client, project)[0] == plain  # passed: real work now

    client.force_login(UserFactory(username="hasty"))
    for _ in golds:
        comparison, _html = _serve(client, project)
        _answer(client, comparison, "b")
    comparison, html = _serve(client, project)
    assert comparison is None or comparison in golds
    assert "did not pass this project" in html and "qualification round" in html


def test_excluding_an_annotator_drops_their_judgments_from_reward_model_data(client, project):
    from django.contrib.auth import get_user_model

    from rewardmodel.data import pairs_for_projects
    from tests.factories import JudgmentFactory, StaffFactory

    comparisons = [ComparisonFactory(batch__project=project) for _ in range(2)]
    spammer = UserFactory(username="spammer")
    JudgmentFactory(comparison=comparisons[0], annotator=spammer)
    JudgmentFactory(comparison=comparisons[1], annotator=UserFactory(username="honest"))
    assert len(pairs_for_projects([project], objective=project.objective)[0]) == 2
    client.force_login(StaffFactory())
    user = get_user_model().objects.get(username="spammer")
    client.post(reverse("dashboard:annotator_update", args=[user.pk]), {"action": "exclude"})
    pairs, _report = pairs_for_projects([project], objective=project.objective)
    assert [pair.comparison_id for pair in pairs] == [comparisons[1].pk]
