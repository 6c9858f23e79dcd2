"""What project owners noticed (issue 16): agreement over too few comparisons, charts with
nothing to draw, the Models page's base names, a word after an adjudication, and the admin's
search and comparison text."""

import json
import re

import pytest
from django.urls import reverse

from annotation.models import Adjudication, Assignment
from margin.models import Job
from rewardmodel.models import RewardModel
from rlhf.models import PolicyVersion
from tests.factories import (
    ComparisonFactory,
    JudgmentFactory,
    ProjectFactory,
    TurnFactory,
    UserFactory,
)


def _project_html(client, project):
    return client.get(reverse("dashboard:project", args=[project.pk])).content.decode()


def test_agreement_over_too_few_comparisons_says_so(staff_client, crafted):
    html = _project_html(staff_client, crafted["project"])
    # The crafted project: five comparisons with three judgments each.
    assert re.search(r'data-stat="direction-n">5 \(15\)<', html)
    note = re.search(r'data-testid="agreement-too-few">([^<]*)<', html).group(1)
    assert note.startswith("Too few to read: 5 comparisons with two or more judgments (at least 10")
    assert not re.search(r'class="interval">\[', html)  # no interval drawn from 5 comparisons


def test_agreement_over_enough_comparisons_shows_intervals(staff_client, db):
    project = ProjectFactory(name="Overlap")
    first, second = UserFactory(), UserFactory()
    for n in range(12):
        comparison = ComparisonFactory(batch__project=project)
        JudgmentFactory(comparison=comparison, annotator=first, choice="a")
        JudgmentFactory(comparison=comparison, annotator=second, choice="a" if n % 4 else "b")
    html = _project_html(staff_client, project)
    assert 'data-testid="agreement-too-few"' not in html
    assert re.search(r'data-stat="direction-n">12 \(24\)<', html)
    # Pairwise agreement 9/12 with a bootstrap interval around it, inside [0, 1].
    low, high = map(float, re.search(
        r'data-stat="direction-pairwise">0\.750<small class="interval">\[([\d.]+), ([\d.]+)\]', html).groups())
    assert 0 <= low < 0.75 < high <= 1
    assert re.search(r'data-stat="direction-ac1">[-\d.]+<small class="interval">\[', html)


def test_count_charts_step_by_whole_numbers(staff_client, crafted):
    html = _project_html(staff_client, crafted["project"])
    for chart_id in ("per-day", "strengths"):
        spec = json.loads(re.search(rf'<script id="{chart_id}" type="application/json">(.*?)</script>', html).group(1))
        assert spec["integer"] is True and spec["empty"] is False
    assert "precision: 0" in open("static/dashboard/charts.js").read()


def test_empty_charts_say_so_instead_of_drawing_bare_axes(staff_client, db):
    html = _project_html(staff_client, ProjectFactory(name="Fresh"))
    assert html.count('data-testid="chart-empty"') == 2  # judgments per day, strengths (all zero)
    assert "<canvas" not in html
    assert "Nothing to plot yet: no judgments recorded for this chart." in html
    models = staff_client.get(reverse("dashboard:models")).content.decode()
    assert models.count('data-testid="chart-empty"') == 3 and "<canvas" not in models


def test_models_page_names_the_base_model_never_its_path(staff_client, db):
    PolicyVersion.objects.create(name="RLHF-V1", checkpoint_path="/srv/margin/models/policies/rlhf-v1")
    RewardModel.objects.create(name="rm-default", objective="helpfulness",
                               base_model="/srv/margin/models/base/SmolLM2-135M-Instruct")
    RewardModel.objects.create(name="rm-from-v1", objective="helpfulness",
                               base_model="/srv/margin/models/policies/rlhf-v1")
    html = staff_client.get(reverse("dashboard:models")).content.decode()
    bases = re.findall(r'<td data-col="base">([^<]*)</td>', html)
    assert sorted(bases) == ["RLHF-V1", "SmolLM2-135M-Instruct"]
    assert "/srv/margin" not in html


def test_adjudication_is_confirmed_on_the_page_it_lands_on(staff_client, crafted):
    comparison = crafted["comparisons"][3]
    response = staff_client.post(reverse("dashboard:adjudicate", args=[comparison.pk]),
                                 {"choice": "b", "strength": "slightly_better"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("dashboard:review", args=[crafted["project"].pk])
    message = re.search(r'data-testid="message">([^<]*)<', response.content.decode()).group(1)
    assert message == (f"Adjudication saved: comparison {comparison.pk} goes to response B, slightly "
                       "better; reward-model data and exports now use it.")
    assert Adjudication.objects.get(comparison=comparison).choice == "b"
    # Shown once: the next page has no message.
    assert 'data-testid="message"' not in staff_client.get(response.redirect_chain[-1][0]).content.decode()


@pytest.fixture
def admin_client(client, db):
    from tests.factories import StaffFactory

    client.force_login(StaffFactory(username="root", is_superuser=True))
    return client


def _changelist_ids(client, model, query):
    html = client.get(reverse(f"admin:{model}_changelist"), {"q": query}).content.decode()
    return sorted(int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', html))


def test_admin_searches_comparisons_judgments_assignments_and_jobs(admin_client):
    wanted = ComparisonFactory(response_a__text="Kettles boil water by induction")
    TurnFactory(dialogue=wanted.dialogue, index=1, role="assistant", content="Ask about otters")
    other = ComparisonFactory()
    judge = UserFactory(username="carla")
    judgment = JudgmentFactory(comparison=wanted, annotator=judge)
    JudgmentFactory(comparison=other)
    assignment = Assignment.objects.create(comparison=other, annotator=judge, a_on_left=True,
                                           served_at=wanted.created_at, expires_at=wanted.created_at,
                                           skip_reason="unreadable table")
    job = Job.objects.create(kind=Job.Kind.PPO, log="iteration 3: reward collapsed")
    Job.objects.create(kind=Job.Kind.PPO, log="fine")
    assert _changelist_ids(admin_client, "annotation_comparison", "induction") == [wanted.pk]
    assert _changelist_ids(admin_client, "annotation_comparison", "otters") == [wanted.pk]
    assert _changelist_ids(admin_client, "annotation_judgment", "carla") == [judgment.pk]
    assert _changelist_ids(admin_client, "annotation_assignment", "unreadable") == [assignment.pk]
    assert _changelist_ids(admin_client, "margin_job", "collapsed") == [job.pk]


def test_admin_comparison_page_shows_the_dialogue_and_response_text(admin_client):
    comparison = ComparisonFactory(response_a__text="def f():\n    return '<b>bold</b>'",
                                   response_b__text="Plain answer B")
    prompt = comparison.dialogue.turns.get().content
    html = admin_client.get(reverse("admin:annotation_comparison_change", args=[comparison.pk])).content.decode()
    assert prompt in html
    assert "def f():\n    return &#x27;&lt;b&gt;bold&lt;/b&gt;&#x27;" in html  # escaped, indentation kept
    assert "Plain answer B" in html and "<b>bold</b>" not in html
    listing = admin_client.get(reverse("admin:annotation_comparison_changelist")).content.decode()
    assert prompt in listing


def test_adjudication_page_shows_code_as_annotators_saw_it(staff_client, db):
    # The adjudicator decides on the same rendering as the annotators: code keeps its indentation,
    # Markdown renders, model-written HTML stays inert, and the raw text is one checkbox away.
    code = "Like this:\n\n```python\ndef f(x):\n    if x:\n        return '<b>x</b>'\n```\n\n**Done** <script>alert(1)</script>"
    comparison = ComparisonFactory(response_a__text=code, response_b__text="- one\n- two")
    JudgmentFactory(comparison=comparison)
    html = staff_client.get(reverse("dashboard:adjudicate", args=[comparison.pk])).content.decode()
    assert "    if x:\n        return &#x27;&lt;b&gt;x&lt;/b&gt;&#x27;" in html  # verbatim in a code block
    assert "<strong>Done</strong>" in html and "<li>one</li>" in html
    assert "<script>alert(1)</script>" not in html and "<b>x</b>" not in html
    assert 'class="raw-switch-box"' in html
    assert re.search(r'<pre class="raw">Like this:\n\n```python\ndef f\(x\):\n    if x:', html)
