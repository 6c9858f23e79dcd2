"""Chromium: staff launch a reward-model job from the dashboard with the tiny model, a real
Celery worker trains it, and the polled progress bar reaches 100 %. Screenshots of the main
pages land in test-artifacts/dashboard-*.png."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from margin.models import Job
from rewardmodel.models import RewardModel
from rlhf.models import PolicyVersion
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
    page.locator("#id_heldout_fraction").fill("1.5")
    page.get_by_role("button", name="Start job").click()
    # Every bad field at once, each under its own field, in words of its label.
    expect(page.locator(".field.invalid")).to_have_count(2)
    expect(page.locator(".field.invalid").filter(has=page.locator("#id_learning_rate"))
           .get_by_text("Learning rate must be greater than 0 (got -1).")).to_be_visible()
    expect(page.locator(".field.invalid").filter(has=page.locator("#id_heldout_fraction"))
           .get_by_text("Heldout fraction must be in [0, 1) (got 1.5).")).to_be_visible()
    assert page.locator("#id_heldout_fraction").get_attribute("max") == "1"
    page.screenshot(path=artifacts_dir / "dashboard-launch-error.png", full_page=True)
    assert not Job.objects.exists()

    # The base model is picked from the policy versions whose weights are in the store.
    PolicyVersion.objects.create(name="tiny-sft", checkpoint_path=str(tiny_model_path))
    page.reload()
    page.locator("#id_project").select_option(label=project.name)
    page.locator("#id_name").fill("rm-from-browser")
    page.locator("#id_base_model").select_option(label="tiny-sft")
    for field, value in [("learning_rate", "0.0003"),
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
    # Counts step by whole numbers (the crafted strengths are 2, 6, 2, 7: Chart.js chose 0.5 steps).
    ticks = page.evaluate("() => Chart.getChart(document.querySelector('canvas[data-chart=strengths]'))"
                          ".scales.y.ticks.map(t => t.value)")
    assert len(ticks) > 2 and all(float(t).is_integer() for t in ticks), ticks

    # Jobs: each queue's live workers, loaded after the page from the workers' own answers.
    page.goto(url + reverse("dashboard:jobs"))
    for queue in ("default", "gpu", "generate"):
        expect(page.locator(f"#workers tr[data-queue={queue}]")).to_contain_text("worker@", timeout=20_000)
    expect(page.get_by_test_id("no-worker")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "dashboard-jobs-workers.png", full_page=True)
    page.goto(url + reverse("dashboard:job", args=[job.pk]))
    expect(page.locator("#job-params")).to_contain_text("config.learning_rate")


def test_the_demo_trains_a_reward_model_that_fills_the_models_page(
    page, live_server, start_worker, tiny_model_path, tmp_path, artifacts_dir, settings  # noqa: F811
):
    """seed_demo queues the demo's reward model; the gpu worker trains it (the tiny model stands
    in for the default one, in the worker's model store) and the Models page shows it."""
    from django.core.management import call_command

    store = tmp_path / "models"  # the worker's MARGIN_MODEL_STORE (tests/real_services.py)
    (store / "base").mkdir(parents=True)
    (store / "base" / "SmolLM2-135M-Instruct").symlink_to(tiny_model_path, target_is_directory=True)
    log_in_as_staff(page, live_server)
    page.goto(live_server.url + reverse("dashboard:models"))
    expect(page.get_by_test_id("chart-empty")).to_have_count(3)  # a newcomer's empty page says so
    call_command("seed_demo", pairs=2)
    start_worker(name="gpu", queues="gpu")
    job = Job.objects.get(kind=Job.Kind.TRAIN_REWARD_MODEL)
    page.goto(live_server.url + reverse("dashboard:job", args=[job.pk]))
    expect(page.get_by_test_id("job-state")).to_have_text("succeeded", timeout=300_000)
    page.goto(live_server.url + reverse("dashboard:models"))
    expect(page.locator("#reward-models")).to_contain_text("demo-helpfulness-rm")
    expect(page.locator("#reward-models td[data-col=base]")).to_have_text("SmolLM2-135M-Instruct")
    # Table 8's shape: Tulu's graded labels fill strength columns; the calibration chart is drawn.
    expect(page.locator("#rm-strength-table tbody tr")).to_have_count(1)
    expect(page.locator("#rm-strength-table tbody td small").first).to_be_visible()
    expect(page.locator("canvas[data-chart=rm-calibration]")).to_be_visible()
    expect(page.locator("canvas[data-chart=rm-strength]")).to_be_visible()
    page.screenshot(path=artifacts_dir / "dashboard-demo-models.png", full_page=True)
