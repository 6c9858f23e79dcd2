"""Load benchmark: simulated annotators against gunicorn + PostgreSQL, all on 127.0.0.1.

    .venv/bin/python bench/load.py --annotators 50 --seconds 60

Starts a throwaway PostgreSQL (tests/pg.py, PostgreSQL's durable defaults; `--database sqlite`
uses a SQLite file instead, for comparison), migrates, seeds one project (3 judgments wanted per
comparison, no gold) with enough comparisons and the annotator accounts with logged-in sessions,
and starts gunicorn with margin.settings and DJANGO_DEBUG=0 (gthread workers, a new database
connection per request, margin.settings' default; `--conn-max-age 60` keeps them). Then one
asyncio task per annotator (httpx) loops until time is up: GET the next comparison (the #task
fragment htmx loads), think (`--think`, 5 s on average: a real annotator reading two responses
takes 20-60 s, so 50 of these are a busy team of several hundred), POST the judgment form with
its CSRF token and real fields; a share of the submits are double clicks (the same form twice
at once: one must be taken, one refused).

Afterwards the database is checked: lost (the client saw a success, no judgment stored or a
different choice), duplicates (two judgments by one annotator on one comparison, or a comparison
over its wanted number) and unacknowledged (stored, but the client saw no success). Prints a
table and adds the run (named by --label) to bench/results/load.json, with the machine, its load
average (other jobs share it) and the CPU seconds of server, database and client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.pg import ThrowawayPostgres  # noqa: E402

CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
COMPARISON = re.compile(r'id="judgment-form"[^>]*data-comparison="(\d+)"', re.S)
WANTED = 3
TEXT = (
    "Here is a careful answer that walks through the question step by step, names the "
    "assumptions it makes, and ends with a short summary the reader can act on. "
) * 6


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help="measured time")
    parser.add_argument("--warmup", type=float, default=5, help="seconds run but not measured")
    parser.add_argument("--think", type=float, default=5.0,
                        help="mean seconds an annotator reads before submitting "
                             "(uniform 0.5x-1.5x)")
    parser.add_argument("--double-submit", type=float, default=0.05,
                        help="share of submits sent twice at once (a double click)")
    parser.add_argument("--max-judgments", type=int, default=2000, help="per annotator")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--conn-max-age", type=int, default=None,
                        help="override CONN_MAX_AGE in the server (margin.settings has 0: "
                             "a new database connection per request)")
    parser.add_argument("--label", default=None,
                        help="name of this run in the results file (default: from the options)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "load.json")
    return parser.parse_args()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# --- set-up: database, seed, server ---------------------------------------------------------------


def django_setup(env):
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(n_annotators, n_comparisons):
    """One project, its comparisons and annotators (bulk inserts); returns ids and sessions."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection
    from django.test import Client

    from annotation.models import Batch, Comparison, Dialogue, Project, Response, Turn

    project = Project.objects.create(
        name="Load benchmark", objective="helpfulness", guidelines="Pick the more helpful one.",
        judgments_per_comparison=WANTED, gold_share=0,
    )
    batch = Batch.objects.create(project=project, number=1)
    dialogues = Dialogue.objects.bulk_create(
        Dialogue(project=project, source="bench") for _ in range(n_comparisons)
    )
    Turn.objects.bulk_create(
        Turn(dialogue=d, index=0, role="user", content=f"Question {i}: how do I do thing {i}?")
        for i, d in enumerate(dialogues)
    )
    responses = Response.objects.bulk_create(
        Response(dialogue=d, context_length=1, text=f"{name} {TEXT}", model_name=name)
        for d in dialogues for name in ("model-a", "model-b")
    )
    Comparison.objects.bulk_create(
        Comparison(batch=batch, dialogue=d, context_length=1,
                   response_a=responses[2 * i], response_b=responses[2 * i + 1])
        for i, d in enumerate(dialogues)
    )
    User = get_user_model()
    users = User.objects.bulk_create(
        User(username=f"load{i:03d}", password=make_password(None)) for i in range(n_annotators)
    )
    from django.conf import settings

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # planner statistics, as autovacuum keeps them in production
    sessions = []
    for user in users:
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        sessions.append((user.pk, client.cookies[settings.SESSION_COOKIE_NAME].value))
    connection.close()
    return project.pk, sessions


def start_gunicorn(args, env, port, log_path):
    command = [
        str(REPO / ".venv" / "bin" / "gunicorn"), "margin.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
        "--threads", str(args.threads), "--worker-class", "gthread",
    ]
    if args.conn_max_age is not None:
        env = {**env, "MARGIN_DB_CONN_MAX_AGE": str(args.conn_max_age)}
    log = open(log_path, "w")
    server = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited: {Path(log_path).read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop(server):
    if server and server.poll() is None:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def cpu_seconds(root_pid):
    """CPU time of a process tree so far: the root, its reaped children and its live ones."""
    tick = os.sysconf("SC_CLK_TCK")
    children = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children[int(fields[1])].append((int(entry.name), fields))
    total, stack = 0.0, [root_pid]
    own = Path(f"/proc/{root_pid}/stat").read_text().rsplit(")", 1)[1].split()
    total += sum(int(x) for x in own[11:15]) / tick  # utime stime cutime cstime
    while stack:
        for pid, fields in children.get(stack.pop(), []):
            total += sum(int(x) for x in fields[11:15]) / tick
            stack.append(pid)
    return total


def cpu_snapshot(server, cluster):
    snapshot = {"server": cpu_seconds(server.pid), "client": sum(os.times()[:2])}
    if cluster:
        snapshot["database"] = cpu_seconds(cluster.postmaster_pid())
    return snapshot


# --- the simulated annotators ---------------------------------------------------------------------


class Stats:
    def __init__(self, measure_from):
        self.measure_from = measure_from
        self.latency = defaultdict(list)  # kind -> seconds, requests started while measuring
        self.errors = Counter()  # what went wrong -> count (any time, warm-up included)
        self.acknowledged = []  # (annotator id, comparison id, side shown as chosen)
        self.double_clicks = Counter()
        self.out_of_work = 0

    async def timed(self, kind, request):
        started = time.monotonic()
        try:
            response = await request
        except httpx.HTTPError as failed:
            self.errors[f"{kind}: {type(failed).__name__}"] += 1
            return None
        if started >= self.measure_from:
            self.latency[kind].append(time.monotonic() - started)
        return response


async def annotator(http, user_id, project_id, args, stats, deadline, rng):
    task_url = f"/projects/{project_id}/compare/"
    for _ in range(args.max_judgments):
        if time.monotonic() >= deadline:
            return
        page = await stats.timed("next", http.get(task_url, headers={"HX-Request": "true"}))
        if page is None or page.status_code != 200:
            if page is not None:
                stats.errors[f"next: HTTP {page.status_code}"] += 1
            await asyncio.sleep(args.think)
            continue
        comparison, token = COMPARISON.search(page.text), CSRF.search(page.text)
        if comparison is None:
            stats.out_of_work += 1
            return
        comparison_id = int(comparison.group(1))
        await asyncio.sleep(rng.uniform(0.5 * args.think, 1.5 * args.think))
        side = rng.choice(["left", "right"])
        form = {"csrfmiddlewaretoken": token.group(1), "choice": side,
                "strength": rng.choice(["significantly_better", "better", "slightly_better"]),
                "rationale": ""}
        url = f"/comparisons/{comparison_id}/judge/"
        clicks = 2 if rng.random() < args.double_submit else 1
        responses = await asyncio.gather(
            *(stats.timed("submit", http.post(url, data=form)) for _ in range(clicks))
        )
        codes = sorted(r.status_code for r in responses if r is not None)
        taken = codes.count(302)
        if clicks == 2:
            refused = [r for r in responses if r is not None and r.status_code == 422]
            if taken == 1 and len(refused) == 1 and "already judged" in refused[0].text:
                stats.double_clicks["one taken, one refused"] += 1
            else:
                stats.double_clicks[f"other: {codes}"] += 1
        for code in codes:
            if code not in (302, 422) or (code == 422 and clicks == 1):
                stats.errors[f"submit: HTTP {code}"] += 1
        if taken:
            stats.acknowledged.append((user_id, comparison_id, side))


async def drive(args, base_url, project_id, sessions):
    from django.conf import settings

    stats = Stats(measure_from=time.monotonic() + args.warmup)
    deadline = stats.measure_from + args.seconds
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    clients = [
        httpx.AsyncClient(base_url=base_url, cookies={settings.SESSION_COOKIE_NAME: key},
                          timeout=30, limits=limits)
        for _, key in sessions
    ]
    try:
        await asyncio.gather(*(
            annotator(client, user_id, project_id, args, stats, deadline, random.Random(i))
            for i, (client, (user_id, _)) in enumerate(zip(clients, sessions))
        ))
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    stats.ended = time.monotonic()
    return stats


# --- checks and report ----------------------------------------------------------------------------


def check_database(project_id, stats):
    from django.db.models import Count

    from annotation.models import Judgment

    judgments = {
        (j.annotator_id, j.comparison_id): j
        for j in Judgment.objects.filter(comparison__batch__project_id=project_id)
    }
    lost = sum(
        1 for user, comparison, side in stats.acknowledged
        if (judgment := judgments.get((user, comparison))) is None
        or judgment.choice != ("a" if (side == "left") == judgment.a_on_left else "b")
    )
    per_pair = Judgment.objects.values("annotator", "comparison").annotate(n=Count("pk"))
    twice = sum(row["n"] - 1 for row in per_pair.filter(n__gt=1))
    per_comparison = Counter(c for _, c in judgments)
    over = sum(n - WANTED for n in per_comparison.values() if n > WANTED)
    acknowledged = {(u, c) for u, c, _ in stats.acknowledged}
    return {
        "judgments_stored": len(judgments),
        "acknowledged": len(stats.acknowledged),
        "lost": lost,
        "duplicates": twice + over,
        "duplicate_pairs": twice,
        "over_capacity": over,
        "unacknowledged": len(set(judgments) - acknowledged),
    }


def percentile(values, q):
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def machine():
    model = ""
    if Path("/proc/cpuinfo").exists():
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"platform": platform.platform(), "cpu": model, "cpus": os.cpu_count(),
            "python": platform.python_version()}


def report(args, stats, checks, load_before, load_after, database):
    window = max(1e-9, min(stats.ended, stats.measure_from + args.seconds) - stats.measure_from)
    rows = {}
    for kind in ("next", "submit"):
        values = stats.latency[kind]
        rows[kind] = {
            "requests": len(values),
            "requests_per_s": round(len(values) / window, 1),
            **{f"p{q}_ms": (round(percentile(values, q) * 1000, 1) if values else None)
               for q in (50, 95, 99)},
            "max_ms": round(max(values) * 1000, 1) if values else None,
        }
    errors = sum(stats.errors.values())
    worst_p99 = max((r["p99_ms"] or 0) for r in rows.values())
    result = {
        "command": "bench/load.py " + " ".join(sys.argv[1:]),
        "setting": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                    "judgments_per_comparison": WANTED, "database": database,
                    "server": f"gunicorn gthread -w {args.workers} --threads {args.threads}, "
                              "margin.settings, DJANGO_DEBUG=0, CONN_MAX_AGE="
                              f"{args.conn_max_age or 0}",
                    "client": "httpx AsyncClient, one per annotator, same machine"},
        "machine": {**machine(), "loadavg_before": load_before, "loadavg_after": load_after},
        "measured_seconds": round(window, 1),
        "endpoints": rows,
        "cpu_seconds": stats.cpu,
        "cpu_ms_per_request": {
            k: round(1000 * v / max(1, sum(len(x) for x in stats.latency.values())), 1)
            for k, v in stats.cpu.items()
        },
        "errors": errors,
        "error_kinds": dict(stats.errors),
        "double_clicks": dict(stats.double_clicks),
        "annotators_out_of_work": stats.out_of_work,
        "database_checks": checks,
        "goal": {"p99_ms_below": 150, "met": worst_p99 < 150 and errors == 0
                 and checks["lost"] == 0 and checks["duplicates"] == 0},
    }
    print(f"\n{args.annotators} annotators, {window:.0f} s measured, {database}, "
          f"gunicorn -w {args.workers} --threads {args.threads}, think {args.think} s")
    print(f"{'endpoint':<8} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'max ms':>7}")
    for kind, row in rows.items():
        print(f"{kind:<8} {row['requests']:>8} {row['requests_per_s']:>7} {row['p50_ms']!s:>7} "
              f"{row['p95_ms']!s:>7} {row['p99_ms']!s:>7} {row['max_ms']!s:>7}")
    print(f"errors {errors} {dict(stats.errors) or ''}; double clicks {dict(stats.double_clicks)}")
    print("database: " + ", ".join(f"{k} {v}" for k, v in checks.items()))
    print(f"CPU seconds during the run (warm-up included): {stats.cpu}")
    print(f"load average before {load_before}, after {load_after}; "
          f"goal met: {result['goal']['met']}")
    return result


def main():
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="margin-bench-load-"))
    env = {
        "DJANGO_SETTINGS_MODULE": "margin.settings",
        "DJANGO_DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(40),
        "ALLOWED_HOSTS": "127.0.0.1",
        "MARGIN_VAR_DIR": str(workdir),  # never the real database or model store
        "LOG_LEVEL": "WARNING",
    }
    cluster = server = None
    try:
        if args.database == "postgres":
            cluster = ThrowawayPostgres(durable=True,
                                        max_connections=args.workers * args.threads + 20)
            env["DATABASE_URL"] = cluster.start()
        else:
            env["DATABASE_URL"] = f"sqlite:///{workdir / 'margin.sqlite3'}"
        django_setup(env)
        per_annotator = (args.seconds + args.warmup) / max(0.05, args.think)
        comparisons = math.ceil(args.annotators * per_annotator / WANTED * 1.5) + 50
        started = time.monotonic()
        project_id, sessions = seed(args.annotators, comparisons)
        print(f"seeded {comparisons} comparisons, {len(sessions)} annotators "
              f"in {time.monotonic() - started:.1f} s")
        port = free_port()
        server = start_gunicorn(args, env, port, workdir / "gunicorn.log")
        load_before = [round(x, 2) for x in os.getloadavg()]
        cpu_before = cpu_snapshot(server, cluster)
        stats = asyncio.run(drive(args, f"http://127.0.0.1:{port}", project_id, sessions))
        cpu_after = cpu_snapshot(server, cluster)
        load_after = [round(x, 2) for x in os.getloadavg()]
        stats.cpu = {k: round(cpu_after[k] - cpu_before[k], 1) for k in cpu_before}
        stop(server)
        checks = check_database(project_id, stats)
        result = report(args, stats, checks, load_before, load_after, args.database)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        runs = json.loads(args.out.read_text()).get("runs", {}) if args.out.exists() else {}
        label = args.label or (f"{args.database}, {args.annotators} annotators, think "
                               f"{args.think} s, CONN_MAX_AGE {args.conn_max_age or 0}")
        runs[label] = result
        args.out.write_text(json.dumps({"about": __doc__.strip().split("\n\n")[0],
                                        "runs": runs}, indent=2) + "\n")
        print(f"wrote {args.out.relative_to(REPO) if args.out.is_relative_to(REPO) else args.out}")
        server_errors = (workdir / "gunicorn.log").read_text().count("Traceback")
        if server_errors:
            print(f"gunicorn log has {server_errors} tracebacks", file=sys.stderr)
    finally:
        stop(server)
        from django.db import connections

        connections.close_all()
        if cluster:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
