"""Chromium under the Content-Security-Policy (issue 15): every annotator and staff page carries the
header, and none of them (htmx swaps, Chart.js charts, polled job progress included) makes the
browser refuse a script, a style or a handler."""

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from margin.demo import DEMO_ACCOUNTS, accounts_create
from margin.models import Job
from rewardmodel.models import RewardModel
from tests.browser.conftest import artifacts_dir, browser_type_launch_args, chromium_path  # noqa: F401
from tests.factories import BatchFactory, ComparisonFactory, JudgmentFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.browser

# The browser reports each refusal as a securitypolicyviolation event (and a console error).
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def site(transactional_db):
    """The demo accounts, a project with judged comparisons (charts have numbers), a running job
    (its page polls) and a reward model (the models page draws its plots)."""
    accounts_create()
    project = ProjectFactory(name="Helpful", judgments_per_comparison=1)
    batch = BatchFactory(project=project, number=1)
    judgments = [JudgmentFactory(comparison=ComparisonFactory(batch=batch),
                                 annotator=UserFactory(username=f"rater{n}")) for n in range(3)]
    for n in range(3):
        ComparisonFactory(batch=batch, response_a__text=f"pair {n}: response A",
                          response_b__text=f"pair {n}: response B")
    job = Job.objects.create(kind=Job.Kind.TRAIN_REWARD_MODEL, state=Job.State.RUNNING,
                             progress_step=3, progress_total=10)
    RewardModel.objects.create(name="rm-1", objective="helpfulness", project=project,
                               base_model="tiny", metrics={"heldout": {"accuracy": 0.6}})
    return {"project": project, "job": job, "judgment": judgments[0]}


class Watch:
    """Console errors, page errors and CSP violations of one browser tab."""

    def __init__(self, page):
        self.page, self.problems = page, []
        page.add_init_script(RECORD_VIOLATIONS)
        page.on("console", lambda message: message.type == "error" and self._console(message.text))
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))

    def _console(self, text):
        if "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(f"console: {text}")

    def visit(self, url):
        response = self.page.goto(url)
        policy = response.headers.get("content-security-policy", "")
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, f"{url}: {policy!r}"
        expect(self.page.locator("main")).to_be_visible()
        self.collect(url)

    def collect(self, where):
        self.problems += [f"{where}: {v}" for v in self.page.evaluate("window.__csp || []")]


def log_in(page, live_server, username):
    page.goto(live_server.url + reverse("login"))
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEMO_ACCOUNTS[username][0])
    page.keyboard.press("Enter")
    page.wait_for_url(live_server.url + reverse("annotation:home"))


def test_annotator_and_dashboard_pages_run_under_the_policy(page, live_server, site, artifacts_dir):
    page.set_default_timeout(15_000)
    watch, url = Watch(page), live_server.url
    project = site["project"].pk

    watch.visit(url + reverse("login"))
    log_in(page, live_server, "demo-annotator")
    watch.collect("login")
    watch.visit(url + reverse("annotation:home"))
    watch.visit(url + reverse("annotation:compare", args=[project]))
    form = page.locator("#judgment-form")
    shown = form.get_attribute("data-comparison")
    for key in ("1", "s", "Enter"):  # keyboard shortcuts (annotate.js), then an htmx swap
        page.keyboard.press(key)
    expect(form).not_to_have_attribute("data-comparison", shown)
    watch.collect("compare after a submit")
    for name in ("write", "demonstrate"):
        watch.visit(url + reverse(f"annotation:{name}", args=[project]))
    watch.visit(url + reverse("annotation:my_judgments"))
    page.get_by_role("button", name="Log out demo-annotator").click()

    log_in(page, live_server, "demo-staff")
    for path in [
        reverse("dashboard:index"), reverse("dashboard:project", args=[project]),
        reverse("dashboard:annotators"), reverse("dashboard:review", args=[project]),
        reverse("dashboard:leaderboard"), reverse("dashboard:models"), reverse("dashboard:jobs"),
        reverse("dashboard:job_launch", args=[Job.Kind.TRAIN_REWARD_MODEL]),
        reverse("dataio:import"), reverse("dataio:export"), reverse("admin:index"),
        reverse("admin:annotation_judgment_changelist"),
        reverse("admin:annotation_judgment_change", args=[site["judgment"].pk]),
    ]:
        watch.visit(url + path)
    watch.visit(url + reverse("dashboard:project", args=[project]))
    expect(page.locator("canvas[data-chart]").first).to_be_visible()
    assert page.evaluate("Object.keys(Chart.instances).length") > 0, "Chart.js drew nothing"
    watch.visit(url + reverse("dashboard:job", args=[site["job"].pk]))
    with page.expect_response(lambda response: "/dashboard/jobs/" in response.url
                              and response.request.headers.get("hx-request") == "true"):
        pass  # one htmx poll swapped the progress in
    expect(page.locator("#job-progress [role=progressbar]")).to_have_attribute("aria-valuenow", "30")
    watch.collect("job page after a poll")
    page.screenshot(path=artifacts_dir / "csp-job-page.png", full_page=True)

    assert not watch.problems, "\n".join(watch.problems)
