"""Chromium: staff launch a reward-model job from the dashboard with the tiny model, a real
Celery worker trains it, and the polled progress bar reaches 100 %. Screenshots of the main
pages land in test-artifacts/dashboard-*.png."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from margin.models import Job
from rewardmodel.models import RewardModel
from tests.browser.conftest import artifacts_dir, browser_type_launch_args, chromium_path  # noqa: F401
from tests.factories import StaffFactory
from tests.rewardmodel.conftest import judged_project

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def log_in_as_staff(page, live_server):
    StaffFactory(username="owner")
    page.set_default_timeout(15_000)
    page.goto(live_server.url + reverse("login"))
    page.get_by_label("Username").fill("owner")
    page.get_by_label("Password").fill("pw-for-tests-123")
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + reverse("annotation:home"))


def test_launch_a_reward_model_and_watch_the_bar_reach_100(
    page, live_server, start_worker, tiny_model_path, crafted, artifacts_dir, settings  # noqa: F811
):
    # A checkpoint path typed on the dashboard must lie in the (web process's) model store.
    settings.MARGIN_MODEL_STORE = tiny_model_path.parent
    project = judged_project(24, name="Helpful RM data")
    start_worker()
    log_in_as_staff(page, live_server)
    url = live_server.url

    page.goto(url + reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL]))
    page.locator("#id_project").select_option(label=project.name)
    page.locator("#id_name").fill("rm-from-browser")
    page.locator("#id_learning_rate").fill("-1")
    page.get_by_role("button", name="Start job").click()
    expect(page.locator(".field.invalid").get_by_text("learning_rate must be > 0")).to_be_visible()
    page.screenshot(path=artifacts_dir / "dashboard-launch-error.png", full_page=True)
    assert not Job.objects.exists()

    for field, value in [("base_model", str(tiny_model_path)), ("learning_rate", "0.0003"),
                         ("max_length", "64"), ("batch_size", "4"),
                         ("gradient_accumulation_steps", "2"), ("heldout_fraction", "0.25"),
                         ("epochs", "2")]:
        page.locator(f"#id_{field}").fill(value)
    page.get_by_role("button", name="Start job").click()
    job = Job.objects.get(kind=Job.Kind.TRAIN_REWARD_MODEL)
    page.wait_for_url(url + reverse("dashboard:job", args=[job.pk]))

    bar = page.locator("#job-progress [role=progressbar]")
    expect(page.get_by_test_id("job-state")).to_have_text("running", timeout=120_000)
    expect(bar).to_have_attribute("aria-valuenow", "100", timeout=240_000)
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded")
    page.screenshot(path=artifacts_dir / "dashboard-job-done.png", full_page=True)
    job.refresh_from_db()
    assert job.state == Job.State.SUCCEEDED and job.progress_step == job.progress_total > 1
    assert RewardModel.objects.filter(name="rm-from-browser", project=project).exists()

    pages = [
        ("overview", reverse("dashboard:index")),
        ("project", reverse("dashboard:project", args=[crafted["project"].pk])),
        ("annotators", reverse("dashboard:annotators")),
        ("review", reverse("dashboard:review", args=[crafted["project"].pk])),
        ("leaderboard", reverse("dashboard:leaderboard")),
        ("models", reverse("dashboard:models")),
        ("jobs", reverse("dashboard:jobs")),
    ]
    for name, path in pages:
        page.goto(url + path)
        expect(page.locator("h1")).to_be_visible()
        page.screenshot(path=artifacts_dir / f"dashboard-{name}.png", full_page=True)
    page.goto(url + reverse("dashboard:project", args=[crafted["project"].pk]))
    # Chart.js from our own static files drew the charts (no CDN: the canvas has a chart).
    assert page.evaluate("() => Chart.getChart(document.querySelector('canvas[data-chart]')) !== undefined")
