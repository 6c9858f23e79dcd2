"""Every URL the project serves, for eight users: anonymous, an annotator who owns the objects
(owner), another annotator (intruder), staff (a superuser), one staff user for each role of
margin/roles.py (viewer, project_manager, ml_operator) and a staff user with no role (no_role).

The URL list comes from walking `django.urls.get_resolver()`: a new URL pattern without a row in
`matrix()` (or in the admin rows generated from the admin's registry) fails
`test_every_url_pattern_is_in_the_matrix` until someone decides who may reach it. On annotation
pages staff are ordinary annotators: they see their own work only. On staff pages each role
reaches what its permissions allow and gets a 403 elsewhere.
"""

from dataclasses import dataclass, field

import pytest
from django.contrib import admin
from django.contrib.contenttypes.models import ContentType
from django.urls import URLResolver, get_resolver, reverse

from margin.models import Job
from margin.roles import EXPORT_DATA, IMPORT_DATA, MANAGE_PROJECTS, RUN_JOBS, VIEW_DASHBOARD
from margin.roles import ROLES as STAFF_ROLES
from tests.security.conftest import client_for, payload_leaks, snapshot

ROLE_USERS = (*STAFF_ROLES, "no_role")  # staff without superuser rights
ROLES = ("anonymous", "owner", "intruder", "staff", *ROLE_USERS)
LOGIN = "redirect to /accounts/login/"
ADMIN_LOGIN = "redirect to /admin/login/"
SIGNED_OUT = "signed out, then redirect to /accounts/login/"
IN = "reached the view (2xx, 3xx elsewhere than a login page, or 422)"
REFUSALS = {LOGIN, ADMIN_LOGIN, 403, 404, 405}


@dataclass
class Case:
    method: str
    url: str
    expected: dict  # role -> an HTTP status, LOGIN, ADMIN_LOGIN or IN
    data: dict = field(default_factory=dict)
    last: int = 0  # 1: changes the acting user's own work (undo); 2, 3: logs them out


def annotator(method, url, ok=200, own=True, data=None):
    """Annotation screens: any signed-in user; `own=False` rows belong to `owner` alone, so
    everyone else gets 404."""
    others = ok if own else 404
    expected = {role: others for role in ROLES} | {"anonymous": LOGIN, "owner": ok}
    return Case(method, url, expected, data or {})


def post_only(url):
    """A GET on a POST-only annotation URL."""
    return annotator("get", url, ok=405)


def staff_only(method, url, ok=None, data=None, needs=VIEW_DASHBOARD):
    """Staff pages: the superuser and the roles holding `needs` get `ok`; everyone else signed in
    a 403 (before any 405: the permission is checked first)."""
    ok = ok or (200 if method == "get" else IN)
    expected = {"anonymous": LOGIN, "owner": 403, "intruder": 403, "staff": ok, "no_role": 403}
    for role, spec in STAFF_ROLES.items():
        expected[role] = ok if needs in spec.permissions else 403
    return Case(method, url, expected, data or {})


def admin_page(url, staff=200, anonymous=ADMIN_LOGIN, method="get", last=0, role=None):
    """Admin pages; `role`: what a staff user with a role (and so no model permission) gets,
    by default the same as the superuser."""
    expected = {"anonymous": anonymous, "owner": 403, "intruder": 403, "staff": staff}
    expected |= {name: staff if role is None else role for name in ROLE_USERS}
    return Case(method, url, expected, last=last)


# Admin rows the superuser is refused or redirected on purpose.
ADMIN_STAFF_STATUS = {
    # axes' attempt and log rows are written by axes only
    "admin/axes/accessattempt/add/": 403,
    "admin/axes/accesslog/add/": 403,
    "admin/axes/accessfailurelog/add/": 403,
    # the audit trail is written by the services only
    "admin/annotation/auditevent/add/": 403,
    "admin/annotation/auditevent/<path:object_id>/delete/": 403,
}


def walk(patterns=None, prefix=""):
    """Every URL pattern's full route, e.g. 'dashboard/jobs/<int:job_id>/'."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def admin_rows(world):
    rows = {
        "admin/": [admin_page(reverse("admin:index"))],
        "admin/login/": [admin_page(reverse("admin:login"), staff=302, anonymous=200)],
        # The admin sends a signed-out visitor of its logout page to its index (then to login).
        "admin/logout/": [
            admin_page(reverse("admin:logout"), staff=405, anonymous=302),
            admin_page(reverse("admin:logout"), staff=SIGNED_OUT, anonymous=302, method="post", last=2),
        ],
        "admin/password_change/": [admin_page(reverse("admin:password_change"))],
        "admin/password_change/done/": [admin_page(reverse("admin:password_change_done"))],
        # No model declares autocomplete fields, so even staff ask it nothing valid.
        "admin/autocomplete/": [admin_page(reverse("admin:autocomplete"), staff=403)],
        "admin/jsi18n/": [admin_page(reverse("admin:jsi18n"))],
        # No model has get_absolute_url: "view on site" has nowhere to go.
        "admin/r/<path:content_type_id>/<path:object_id>/": [admin_page(
            reverse("admin:view_on_site", args=[ContentType.objects.get_for_model(Job).pk, world["job"].pk]),
            staff=404)],
        "admin/auth/user/<id>/password/": [
            admin_page(reverse("admin:auth_user_password_change", args=[world["owner"].pk]), role=403)],
        "admin/(?P<url>.*)$": [admin_page("/admin/no-such-page/", staff=404)],
    }
    labels = list(dict.fromkeys(model._meta.app_label for model in admin.site._registry))
    rows[f"admin/^(?P<app_label>{'|'.join(labels)})/$"] = [
        admin_page(reverse("admin:app_list", args=[label]), role=404) for label in labels
    ]
    for model in admin.site._registry:
        app, name = model._meta.app_label, model._meta.model_name
        row = model._default_manager.order_by("pk").first()
        assert row is not None, f"the world fixture needs a {model.__name__} row for the admin URLs"
        base = f"admin/{app}/{name}/"
        for route, url_name, args, status in [
            (base, "changelist", [], 200),
            (base + "add/", "add", [], 200),
            (base + "<path:object_id>/history/", "history", [row.pk], 200),
            (base + "<path:object_id>/delete/", "delete", [row.pk], 200),
            (base + "<path:object_id>/change/", "change", [row.pk], 200),
        ]:
            url = reverse(f"admin:{app}_{name}_{url_name}", args=args)
            rows[route] = [admin_page(url, staff=ADMIN_STAFF_STATUS.get(route, status), role=403)]
        rows[base + "<path:object_id>/"] = [admin_page(f"/{base}{row.pk}/", staff=302)]
    return rows


def matrix(world):
    project, batch = world["project"].pk, world["batch"].pk
    open_comparison = world["assignment"].comparison_id
    judged = world["judgment"].comparison_id
    job = world["job"].pk
    rm_kind = Job.Kind.TRAIN_REWARD_MODEL
    d = lambda name, *args: reverse(f"dashboard:{name}", args=args)  # noqa: E731
    a = lambda name, *args: reverse(f"annotation:{name}", args=args)  # noqa: E731
    everyone = {role: 200 for role in ROLES}
    rows = {
        # --- accounts
        "accounts/login/": [Case("get", reverse("login"), everyone),
                            Case("post", reverse("login"), everyone)],
        "accounts/logout/": [Case("get", reverse("logout"), {role: 405 for role in ROLES}),
                             Case("post", reverse("logout"), {role: SIGNED_OUT for role in ROLES}, last=3)],
        # --- annotation: signed-in users; objects only their owner's
        "": [annotator("get", a("home"))],
        "projects/<int:project_id>/compare/": [annotator("get", a("compare", project))],
        "projects/<int:project_id>/undo/": [
            post_only(a("undo", project)),
            Case("post", a("undo", project),
                 {role: 422 for role in ROLES} | {"anonymous": LOGIN, "owner": IN}, last=1),
        ],
        "projects/<int:project_id>/write/": [annotator("get", a("write", project)),
                                             annotator("post", a("write", project), ok=422, data={"prompt": ""})],
        "projects/<int:project_id>/demonstrate/": [annotator("get", a("demonstrate", project)),
                                                   annotator("post", a("demonstrate", project), ok=422, data={"text": ""})],
        "comparisons/<int:comparison_id>/judge/": [
            post_only(a("judge", open_comparison)),
            annotator("post", a("judge", open_comparison), ok=422, own=False),
        ],
        "comparisons/<int:comparison_id>/skip/": [
            post_only(a("skip", open_comparison)),
            annotator("post", a("skip", open_comparison), ok=422, own=False),
        ],
        "comparisons/<int:comparison_id>/continue/": [
            annotator("get", a("continue", judged), own=False),  # the continue form, again
            annotator("post", a("continue", judged), ok=422, own=False),
        ],
        "jobs/<int:job_id>/pair/": [annotator("get", a("pair_status", world["pair_job"].pk), own=False)],
        "jobs/<int:job_id>/pair/cancel/": [
            post_only(a("pair_cancel", world["pair_job"].pk)),
            Case("post", a("pair_cancel", world["pair_job"].pk),
                 {role: 404 for role in ROLES} | {"anonymous": LOGIN, "owner": IN}, last=1),
        ],
        "favicon.ico": [Case("get", a("favicon"), {role: IN for role in ROLES})],
        "my/judgments/": [annotator("get", a("my_judgments"))],
        "my/judgments/<int:judgment_id>/": [annotator("get", a("my_judgment", world["judgment"].pk), own=False)],
        # --- dashboard: staff; reading needs VIEW_DASHBOARD, each action its own permission
        "dashboard/": [staff_only("get", d("index"))],
        "dashboard/projects/new/": [staff_only("get", d("project_create"), needs=MANAGE_PROJECTS),
                                    staff_only("post", d("project_create"), ok=422, needs=MANAGE_PROJECTS)],
        "dashboard/projects/<int:project_id>/": [staff_only("get", d("project", project))],
        "dashboard/projects/<int:project_id>/settings/": [
            staff_only("get", d("project_settings", project), ok=405, needs=MANAGE_PROJECTS),
            staff_only("post", d("project_settings", project), ok=422, needs=MANAGE_PROJECTS),
        ],
        "dashboard/projects/<int:project_id>/batches/open/": [
            staff_only("get", d("batch_open", project), ok=405, needs=MANAGE_PROJECTS),
            staff_only("post", d("batch_open", project), needs=MANAGE_PROJECTS),
        ],
        "dashboard/batches/<int:batch_id>/close/": [
            staff_only("get", d("batch_close", batch), ok=405, needs=MANAGE_PROJECTS),
            staff_only("post", d("batch_close", batch), needs=MANAGE_PROJECTS),
        ],
        "dashboard/projects/<int:project_id>/review/": [staff_only("get", d("review", project))],
        "dashboard/comparisons/<int:comparison_id>/adjudicate/": [
            staff_only("get", d("adjudicate", judged), needs=MANAGE_PROJECTS),
            staff_only("post", d("adjudicate", judged), ok=422, needs=MANAGE_PROJECTS),
        ],
        "dashboard/annotators/": [staff_only("get", d("annotators"))],
        "dashboard/annotators/<int:user_id>/": [
            staff_only("get", d("annotator_update", world["sleeper"].pk), ok=405, needs=MANAGE_PROJECTS),
            staff_only("post", d("annotator_update", world["sleeper"].pk), ok=422, needs=MANAGE_PROJECTS),
        ],
        "dashboard/leaderboard/": [staff_only("get", d("leaderboard"))],
        "dashboard/guardrails/": [staff_only("get", d("guardrails"))],
        "dashboard/models/": [staff_only("get", d("models"))],
        "dashboard/models/reward/<int:reward_model_id>/": [
            staff_only("get", d("reward_model", world["reward_model"].pk)),
            staff_only("post", d("reward_model", world["reward_model"].pk), ok=422, needs=RUN_JOBS,
                       data={"gate": "high"}),
        ],
        "dashboard/policies/<int:version_id>/backend/": [
            staff_only("get", d("policy_backend", world["policy"].pk), needs=RUN_JOBS),
            staff_only("post", d("policy_backend", world["policy"].pk), ok=422, needs=RUN_JOBS),
        ],
        "dashboard/jobs/": [staff_only("get", d("jobs"))],
        "dashboard/jobs/workers/": [staff_only("get", d("workers"))],
        "dashboard/jobs/new/<str:kind>/": [staff_only("get", d("job_launch", rm_kind), needs=RUN_JOBS),
                                           staff_only("post", d("job_launch", rm_kind), ok=422, needs=RUN_JOBS)],
        "dashboard/jobs/<int:job_id>/": [staff_only("get", d("job", job))],
        "dashboard/jobs/<int:job_id>/cancel/": [staff_only("get", d("job_cancel", job), ok=405, needs=RUN_JOBS),
                                                staff_only("post", d("job_cancel", job), needs=RUN_JOBS)],
        "dashboard/jobs/<int:job_id>/retry/": [staff_only("get", d("job_retry", job), ok=405, needs=RUN_JOBS),
                                               staff_only("post", d("job_retry", job), needs=RUN_JOBS)],
        # --- data import and export: staff with the permission
        "data/import/": [staff_only("get", reverse("dataio:import"), needs=IMPORT_DATA),
                         staff_only("post", reverse("dataio:import"), ok=422, needs=IMPORT_DATA)],
        "data/import/<int:job_id>/": [staff_only("get", reverse("dataio:import_job", args=[world["import_job"].pk]),
                                                 needs=IMPORT_DATA)],
        "data/export/": [staff_only("get", reverse("dataio:export"), needs=EXPORT_DATA)],
    }
    rows.update(admin_rows(world))
    return rows


def outcome(response, expected):
    """Whether a response meets an expectation, and what it was in words."""
    where = response.get("Location", "")
    said = f"{response.status_code}" + (f" -> {where}" if where else "")
    if expected in (LOGIN, SIGNED_OUT):
        return response.status_code == 302 and where.startswith(reverse("login")), said
    if expected == ADMIN_LOGIN:
        return response.status_code == 302 and where.startswith(reverse("admin:login")), said
    if expected == IN:
        to_login = where.startswith((reverse("login"), reverse("admin:login")))
        return (200 <= response.status_code < 400 or response.status_code == 422) and not to_login, said
    return response.status_code == expected, said


def test_every_url_pattern_is_in_the_matrix(world):
    served, covered = set(walk()), set(matrix(world))
    assert not served - covered, f"URL patterns nobody decided access for: {sorted(served - covered)}"
    assert not covered - served, f"matrix rows for URLs that no longer exist: {sorted(covered - served)}"


@pytest.mark.parametrize("role", ROLES)
def test_who_reaches_what(world, role):
    """Each role walks every URL; refused requests change nothing, and no page shows a stored
    script unescaped."""
    client = client_for(world.get(role))
    cases = [case for rows in matrix(world).values() for case in rows]
    cases.sort(key=lambda case: (case.last, case.method == "post"))
    wrong, leaks = [], []
    for case in cases:
        expected = case.expected[role]
        before = snapshot() if expected in REFUSALS else None
        response = getattr(client, case.method)(case.url, case.data)
        ok, said = outcome(response, expected)
        if not ok:
            wrong.append(f"{case.method.upper()} {case.url}: expected {expected}, got {said}")
        if before is not None and snapshot() != before:
            wrong.append(f"{case.method.upper()} {case.url}: refused ({said}) but changed the database")
        if "html" in response.get("Content-Type", "") and payload_leaks(response.content.decode()):
            leaks.append(f"{case.method.upper()} {case.url}")
    assert not wrong, "\n".join(wrong)
    assert not leaks, f"raw script payload on: {leaks}"
