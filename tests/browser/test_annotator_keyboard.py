"""An annotator judges safety comparisons in Chromium with the keyboard alone."""

import itertools
import types

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation import services
from annotation.models import Comparison, Judgment
from margin.demo import (
    DEMO_ACCOUNTS,
    HELPFULNESS_GUIDELINES,
    SAFETY_GUIDELINES,
    accounts_create,
)
from tests.factories import BatchFactory, ComparisonFactory, ProjectFactory, SafetyProjectFactory

pytestmark = pytest.mark.browser

ANNOTATOR = "demo-annotator"
STRENGTH_OF_KEY = {
    "a": "significantly_better",
    "s": "better",
    "d": "slightly_better",
    "f": "negligibly_better",
}
SAFE_OF_KEY = {"q": True, "w": False, "o": True, "p": False}  # q/w left, o/p right


@pytest.fixture
def demo(transactional_db):
    """The demo's accounts and two projects, with pairs whose texts name their comparison."""
    accounts_create()
    helpfulness = ProjectFactory(name="Demo · Helpfulness", guidelines=HELPFULNESS_GUIDELINES)
    safety = SafetyProjectFactory(name="Demo · Safety", guidelines=SAFETY_GUIDELINES)
    for project in (helpfulness, safety):
        batch = BatchFactory(project=project, number=1)
        for n in range(4):  # one more than we judge, so every submit swaps a comparison in
            ComparisonFactory(
                batch=batch,
                response_a__text=f"{project.objective} pair {n}: response A",
                response_b__text=f"{project.objective} pair {n}: response B",
            )
    return types.SimpleNamespace(helpfulness=helpfulness, safety=safety)


@pytest.fixture
def alternating_order(monkeypatch):
    """Serve B on the left, then A, then B...: both ways of un-swapping the sides get checked."""
    draws = itertools.cycle([0.9, 0.1])  # a_on_left = random() < 0.5
    monkeypatch.setattr(services.assignment, "random", types.SimpleNamespace(random=lambda: next(draws)))


def log_in(page, live_server):
    page.set_default_timeout(10_000)
    page.goto(live_server.url + reverse("login"))
    page.get_by_label("Username").fill(ANNOTATOR)
    page.get_by_label("Password").fill(DEMO_ACCOUNTS[ANNOTATOR][0])
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + reverse("annotation:home"))


def open_compare(page, live_server, project):
    page.goto(live_server.url + reverse("annotation:compare", args=[project.pk]))
    expect(page.locator("#judgment-form")).to_be_visible()
    page.evaluate("window.__marker = 1")  # survives htmx swaps, lost on a full page load


def test_annotator_judges_three_comparisons_with_the_keyboard_only(
    page, live_server, demo, alternating_order, artifacts_dir
):
    log_in(page, live_server)
    open_compare(page, live_server, demo.safety)
    form = page.locator("#judgment-form")
    rounds = [
        # side, strength, left safety, right safety
        ("1", "a", "q", "p"),
        ("2", "d", "w", "o"),
        ("1", "f", "q", "o"),
    ]
    shown = []
    for number, keys in enumerate(rounds, start=1):
        comparison_id = int(form.get_attribute("data-comparison"))
        shown.append(
            {
                "comparison_id": comparison_id,
                "left": page.get_by_test_id("left-text").inner_text().strip(),
                "right": page.get_by_test_id("right-text").inner_text().strip(),
                "keys": keys,
            }
        )
        for key in keys:
            page.keyboard.press(key)
        side = "left" if keys[0] == "1" else "right"
        expect(page.locator(f'input[name="choice"][value="{side}"]')).to_be_checked()
        page.screenshot(path=artifacts_dir / f"annotator-keyboard-{number}-before-enter.png")
        page.keyboard.press("Enter")
        expect(form).not_to_have_attribute("data-comparison", str(comparison_id))
        assert page.evaluate("window.__marker") == 1, "the page reloaded instead of swapping"
    page.screenshot(path=artifacts_dir / "annotator-keyboard-after-three.png", full_page=True)

    judgments = Judgment.objects.filter(annotator__username=ANNOTATOR).order_by("pk")
    assert judgments.count() == 3
    orders_shown = set()
    for seen, judgment in zip(shown, judgments, strict=True):
        comparison = Comparison.objects.select_related("response_a", "response_b").get(
            pk=seen["comparison_id"]
        )
        a_on_left = seen["left"] == comparison.response_a.text
        assert (seen["left"], seen["right"]) == (
            (comparison.response_a.text, comparison.response_b.text)
            if a_on_left
            else (comparison.response_b.text, comparison.response_a.text)
        )
        orders_shown.add(a_on_left)
        side_key, strength_key, left_key, right_key = seen["keys"]
        chose_left = side_key == "1"
        left_safe, right_safe = SAFE_OF_KEY[left_key], SAFE_OF_KEY[right_key]
        assert judgment.comparison_id == comparison.pk
        assert judgment.a_on_left is a_on_left
        assert judgment.choice == ("a" if chose_left == a_on_left else "b")
        assert judgment.strength == STRENGTH_OF_KEY[strength_key]
        assert (judgment.response_a_safe, judgment.response_b_safe) == (
            (left_safe, right_safe) if a_on_left else (right_safe, left_safe)
        )
        assert judgment.seconds_spent > 0
    assert orders_shown == {True, False}, "both left/right orders should have been served"


def test_failed_submit_keeps_what_was_typed(page, live_server, demo, artifacts_dir):
    log_in(page, live_server)
    open_compare(page, live_server, demo.safety)
    form = page.locator("#judgment-form")
    comparison_id = form.get_attribute("data-comparison")
    rationale = "The right one declines and points to a safer resource."

    page.keyboard.press("2")
    page.keyboard.press("s")
    page.locator('textarea[name="rationale"]').click()
    page.keyboard.type(rationale)
    page.get_by_role("heading", level=1).click()  # leave the textarea: Enter submits again
    page.keyboard.press("Enter")

    expect(page.get_by_text("Label this response safe or unsafe.")).to_have_count(2)
    page.screenshot(path=artifacts_dir / "annotator-keyboard-missing-safety.png", full_page=True)
    assert page.evaluate("window.__marker") == 1
    expect(form).to_have_attribute("data-comparison", comparison_id)
    expect(page.locator('textarea[name="rationale"]')).to_have_value(rationale)
    expect(page.locator('input[name="choice"][value="right"]')).to_be_checked()
    expect(page.locator('input[name="strength"][value="better"]')).to_be_checked()
    assert not Judgment.objects.exists()
