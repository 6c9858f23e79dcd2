"""Many annotators at once against the live server, as their browsers would: take work, submit
the form (with CSRF token), sometimes twice at the same moment (a double click)."""

import random
from collections import Counter

import pytest
from django.db.models import Count

from annotation.models import Assignment, Judgment
from tests.concurrency.conftest import alerts, run_in_threads, task_of
from tests.factories import BatchFactory, ComparisonFactory, ProjectFactory, UserFactory

pytestmark = [pytest.mark.db_sensitive, pytest.mark.django_db(transaction=True)]

ANNOTATORS = 12
COMPARISONS = 15
WANTED = 3
HX = {"HX-Request": "true"}


def test_many_annotators_at_once_lose_nothing_and_never_overfill(login_http):
    project = ProjectFactory(judgments_per_comparison=WANTED, gold_share=0)
    batch = BatchFactory(project=project)
    ComparisonFactory.create_batch(COMPARISONS, batch=batch)
    users = [UserFactory() for _ in range(ANNOTATORS)]
    # Each annotator gets two connections with one session: the second fires the double clicks.
    sessions = {user.pk: (login_http(user), login_http(user)) for user in users}
    compare_url = f"/projects/{project.pk}/compare/"

    def annotate(index):
        user = users[index]
        http, twin = sessions[user.pk]
        htmx = index % 2 == 1  # half post like htmx (fragment back), half as plain forms (302)
        rng = random.Random(index)
        stored, doubles = [], []
        page = http.get(compare_url)
        assert page.status_code == 200, page.text[:300]
        comparison_id, token = task_of(page.text)
        while comparison_id is not None:
            side = rng.choice(["left", "right"])
            form = {"csrfmiddlewaretoken": token, "choice": side, "strength": "better",
                    "rationale": f"annotator {index} on {comparison_id}"}
            url = f"/comparisons/{comparison_id}/judge/"
            headers = HX if htmx else {}
            if len(stored) % 3 == 0:  # a double click: the same form twice at the same moment
                twin.cookies.update(http.cookies)
                both = run_in_threads(
                    lambda client: client.post(url, data=form, headers=headers), [http, twin]
                )
                refused = [r for r in both if r.status_code == 422]
                accepted = [r for r in both if r.status_code != 422]
                assert len(accepted) == 1 and len(refused) == 1, [alerts(r) for r in both]
                assert "already judged" in refused[0].text
                doubles.append(comparison_id)
                response = accepted[0]
            else:
                response = http.post(url, data=form, headers=headers)
            assert response.status_code == (200 if htmx else 302), alerts(response)
            stored.append((comparison_id, side))
            if not htmx:
                response = http.get(compare_url)
                assert response.status_code == 200
            comparison_id, token = task_of(response.text)
        return user.pk, stored, doubles

    results = run_in_threads(annotate, list(range(ANNOTATORS)), timeout=120)

    judgments = {(j.annotator_id, j.comparison_id): j for j in Judgment.objects.all()}
    accepted = [(user, c, side) for user, stored, _ in results for c, side in stored]
    # Every submission that got a success response is stored, with the side the annotator picked.
    for user, comparison, side in accepted:
        judgment = judgments.get((user, comparison))
        assert judgment is not None, f"lost: annotator {user} on comparison {comparison}"
        assert judgment.choice == ("a" if (side == "left") == judgment.a_on_left else "b")
    # Nothing stored that no one saw succeed: a double click made one judgment.
    assert len(judgments) == len(accepted) == len(set((u, c) for u, c, _ in accepted))
    doubles = [c for _, _, d in results for c in d]
    assert len(doubles) >= ANNOTATORS  # each annotator's first submit was a double click
    # No comparison over its wanted number; all the wanted work got done.
    per_comparison = Counter(c for _, c in judgments)
    assert max(per_comparison.values()) == WANTED
    assert sum(per_comparison.values()) == COMPARISONS * WANTED
    per_pair = Judgment.objects.values("annotator", "comparison").annotate(n=Count("pk"))
    assert not per_pair.filter(n__gt=1).exists()
    assert not Assignment.objects.filter(status=Assignment.Status.OPEN).exists()
