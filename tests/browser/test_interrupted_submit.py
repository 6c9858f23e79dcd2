"""A submit that fails (server unreachable, session expired) keeps the typed judgment and says why;
submitting again once things are back stores it exactly once."""

import pytest
from playwright.sync_api import expect

from annotation.models import Judgment
from tests.browser.test_annotator_keyboard import demo, log_in, open_compare  # noqa: F401

pytestmark = pytest.mark.browser

RATIONALE = "Left answers the question; right wanders off."


def type_judgment(page):
    page.keyboard.press("1")
    page.keyboard.press("d")
    page.locator('textarea[name="rationale"]').fill(RATIONALE)
    page.get_by_role("heading", level=1).click()  # leave the textarea: Enter submits


def expect_judgment_still_on_page(page, comparison_id):
    expect(page.locator("#judgment-form")).to_have_attribute("data-comparison", comparison_id)
    expect(page.locator('input[name="choice"][value="left"]')).to_be_checked()
    expect(page.locator('input[name="strength"][value="slightly_better"]')).to_be_checked()
    expect(page.locator('textarea[name="rationale"]')).to_have_value(RATIONALE)


def test_server_unreachable_then_back(page, live_server, demo):  # noqa: F811
    log_in(page, live_server)
    open_compare(page, live_server, demo.helpfulness)
    comparison_id = page.locator("#judgment-form").get_attribute("data-comparison")
    type_judgment(page)

    page.route("**/judge/", lambda route: route.abort("connectionrefused"))  # server down
    page.keyboard.press("Enter")
    expect(page.locator("#net-error")).to_be_visible()
    expect_judgment_still_on_page(page, comparison_id)
    assert not Judgment.objects.exists()

    page.unroute("**/judge/")  # server back
    page.keyboard.press("Enter")
    expect(page.locator("#judgment-form")).not_to_have_attribute("data-comparison", comparison_id)
    expect(page.locator("#net-error")).to_be_hidden()
    judgment = Judgment.objects.get()
    assert (judgment.comparison_id, judgment.strength, judgment.rationale) == (
        int(comparison_id), "slightly_better", RATIONALE)


def test_session_expired_then_logged_in_again_in_another_tab(page, live_server, demo):  # noqa: F811
    log_in(page, live_server)
    open_compare(page, live_server, demo.helpfulness)
    comparison_id = page.locator("#judgment-form").get_attribute("data-comparison")
    type_judgment(page)

    page.context.clear_cookies()  # the session (and its CSRF cookie) are gone
    page.keyboard.press("Enter")
    expect(page.locator("#session-expired")).to_be_visible()
    expect(page.locator("#session-expired")).to_contain_text("Your answer is still on this page")
    expect_judgment_still_on_page(page, comparison_id)
    assert page.evaluate("window.__marker") == 1  # no page load: nothing typed was thrown away
    assert not Judgment.objects.exists()

    other_tab = page.context.new_page()
    log_in(other_tab, live_server)
    other_tab.close()
    page.bring_to_front()
    page.keyboard.press("Enter")  # the page's stale CSRF token is replaced by the new cookie's
    expect(page.locator("#judgment-form")).not_to_have_attribute("data-comparison", comparison_id)
    expect(page.locator("#session-expired")).to_be_hidden()
    assert Judgment.objects.get().comparison_id == int(comparison_id)
