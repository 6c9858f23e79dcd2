"""Issue 16 in Chromium: Enter on another control, scrolling to the next comparison, the raw-text
toggle, the phone layout (First/Second, a header that wraps, large targets) and the laptop layout
(strength and Submit on screen under a long dialogue). Screenshots of the compare screen with a
code answer land in test-artifacts/."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from annotation.models import Judgment
from tests.factories import BatchFactory, ComparisonFactory, SafetyProjectFactory, UserFactory

pytestmark = pytest.mark.browser

PASSWORD = "pw-for-tests-123"  # tests/factories.py
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1366, "height": 768}
CODE_ANSWER = (
    "Here is a function that sums a list:\n\n```python\ndef total(xs):\n    s = 0\n"
    "    for x in xs:\n        s += x\n    return s\n```\n\n- `sum(xs)` does the same\n"
    "- **Tip:** prefer the built-in.\n"
)
OTHER_ANSWER = "Just use `sum(xs)`:\n\n```python\nprint(sum([1, 2, 3]))\n```"
LONG_DIALOGUE = "\n\n".join(f"Paragraph {n}: " + "a long safety scenario " * 12 for n in range(14))


@pytest.fixture
def reader(transactional_db):
    return UserFactory(username="reader")


@pytest.fixture
def code_project(transactional_db):
    batch = BatchFactory(project=SafetyProjectFactory(name="Code safety"))
    for _ in range(3):
        comparison = ComparisonFactory(
            batch=batch, response_a__text=CODE_ANSWER, response_b__text=OTHER_ANSWER
        )
        comparison.dialogue.turns.update(content="How do I sum a list in **Python**?")
    return batch.project


@pytest.fixture
def long_project(transactional_db):
    batch = BatchFactory(project=SafetyProjectFactory(name="Long dialogues"))
    for _ in range(3):
        comparison = ComparisonFactory(batch=batch, response_a__text=CODE_ANSWER)
        comparison.dialogue.turns.update(content=LONG_DIALOGUE)
    return batch.project


def log_in(page, live_server):
    page.set_default_timeout(10_000)
    page.goto(live_server.url + reverse("login"))
    page.get_by_label("Username").fill("reader")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + reverse("annotation:home"))


def open_compare(page, live_server, project):
    page.goto(live_server.url + reverse("annotation:compare", args=[project.pk]))
    expect(page.locator("#judgment-form")).to_be_visible()


def assert_soon(page, expression, seconds=5):
    """Poll `expression` from Python: wait_for_function evaluates strings with eval, which our
    Content-Security-Policy (rightly) refuses."""
    for _ in range(int(seconds * 20)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"still false after {seconds} s: {expression}")


def answer_with_keys(page, keys="1aqo"):
    for key in keys:
        page.keyboard.press(key)


def test_enter_on_a_focused_button_is_that_buttons_action_not_a_submit(
    page, live_server, reader, code_project
):
    log_in(page, live_server)
    open_compare(page, live_server, code_project)
    answer_with_keys(page)
    page.locator("#undo-button").focus()
    page.keyboard.press("Enter")  # Undo, with nothing to undo: says so, submits nothing
    expect(page.get_by_test_id("undo-error")).to_be_visible()
    assert not Judgment.objects.exists()
    form = page.locator("#judgment-form")
    comparison_id = form.get_attribute("data-comparison")
    answer_with_keys(page)
    page.locator('input[name="choice"][value="left"]').focus()  # a radio of the form: Enter submits
    page.keyboard.press("Enter")
    expect(form).not_to_have_attribute("data-comparison", comparison_id)
    expect(page.get_by_test_id("saved")).to_contain_text("Saved")
    assert Judgment.objects.count() == 1


def test_the_next_comparison_is_shown_from_its_start(page, live_server, reader, long_project):
    page.set_viewport_size(LAPTOP)
    log_in(page, live_server)
    open_compare(page, live_server, long_project)
    page.mouse.wheel(0, 5000)
    assert_soon(page, "window.scrollY > 500")
    answer_with_keys(page)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("saved")).to_be_visible()
    # htmx settles the swap a moment later; then the page scrolls.
    assert_soon(page, "Math.abs(document.getElementById('task').getBoundingClientRect().top) < 50")
    assert page.evaluate("window.scrollY") > 0  # scrolled to the task, not to the very top


def test_raw_text_toggle_shows_the_text_as_written_and_remembers_it(
    page, live_server, reader, code_project
):
    log_in(page, live_server)
    open_compare(page, live_server, code_project)
    text = page.get_by_test_id("left-text").or_(page.get_by_test_id("right-text")).first
    expect(page.locator(".md pre").first).to_be_visible()
    expect(page.locator(".raw").first).to_be_hidden()
    page.keyboard.press("r")
    expect(page.locator(".raw").first).to_be_visible()
    expect(page.locator(".md").first).to_be_hidden()
    expect(page.locator("#raw-toggle")).to_have_attribute("aria-pressed", "true")
    assert "```" in text.inner_text()
    page.reload()  # the choice is kept
    expect(page.locator(".raw").first).to_be_visible()
    page.locator("#raw-toggle").click()
    expect(page.locator(".md pre").first).to_be_visible()


def test_code_keeps_its_indentation_on_screen(page, live_server, reader, code_project, artifacts_dir):
    page.set_viewport_size(LAPTOP)
    log_in(page, live_server)
    open_compare(page, live_server, code_project)
    code = page.locator(".md pre", has_text="def total").first
    expect(code).to_be_visible()
    assert "\n    s = 0\n    for x in xs:\n        s += x\n" in code.inner_text()
    # Strength and Submit stay on screen without scrolling (sticky action bar).
    submit = page.get_by_role("button", name="Submit")
    box = submit.bounding_box()
    assert box["y"] + box["height"] <= LAPTOP["height"]
    page.screenshot(path=artifacts_dir / "compare-code-laptop.png")


def test_a_long_dialogue_leaves_strength_and_submit_on_a_laptop_screen(
    page, live_server, reader, long_project, artifacts_dir
):
    page.set_viewport_size(LAPTOP)
    log_in(page, live_server)
    open_compare(page, live_server, long_project)
    assert page.evaluate("document.body.scrollHeight") > 2 * LAPTOP["height"]
    for name in ("Submit", "Significantly better"):
        control = page.get_by_role("button", name=name) if name == "Submit" else page.get_by_label(name)
        box = control.bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= LAPTOP["height"], name
    page.screenshot(path=artifacts_dir / "compare-long-dialogue-laptop.png")


def test_on_a_phone_the_sides_are_first_and_second_and_targets_are_large(
    page, live_server, reader, code_project, artifacts_dir
):
    page.set_viewport_size(PHONE)
    log_in(page, live_server)
    open_compare(page, live_server, code_project)
    left = page.locator("#response-left header label")
    expect(left).to_contain_text("First is better")
    assert "Left" not in left.inner_text()  # the wide label is there, hidden
    expect(page.locator("#response-right header label")).to_contain_text("Second is better")
    # The responses stack: the second starts below the first.
    first, second = (page.locator(f"#response-{s}").bounding_box() for s in ("left", "right"))
    assert second["y"] >= first["y"] + first["height"]
    for selector in ("#response-left .pick", ".strength label", ".safety label"):
        box = page.locator(selector).first.bounding_box()
        assert box["height"] >= 44, f"{selector} is {box['height']}px tall"
    # The header does not run together: the brand and the first nav link keep apart.
    brand = page.locator(".topbar .brand").bounding_box()
    projects = page.locator(".topbar nav a").first.bounding_box()
    assert projects["y"] >= brand["y"] + brand["height"] or projects["x"] >= brand["x"] + brand["width"] + 8
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=artifacts_dir / "compare-code-phone.png", full_page=True)
