"""Which rooms may import which (docs/architecture.md); a test holds the rule.

Every import in every module counts, lazy ones inside functions too: a lazy import is still a
dependency, only a cheaper one.
"""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

# room -> the rooms (packages, or single modules) it may import. `margin` is the Django project
# (settings, urls, celery, serve, demo) and also holds the job room (margin.models, margin.jobs):
# apps may import that room and the command helpers, never the project itself.
JOB_ROOM = {"margin.jobs", "margin.models", "margin.celery", "margin.tasks"}
ALLOWED = {
    "core": set(),
    "modelruntime": {"core"},
    "annotation": {"core"} | JOB_ROOM,
    "rewardmodel": {"core", "modelruntime", "annotation", "margin.cli"} | JOB_ROOM,
    # rlhf reads reward models only to score with them, and their pair builder (DPO trains on
    # the very pairs the reward models do)
    "rlhf": {"core", "modelruntime", "annotation", "rewardmodel.scoring", "rewardmodel.modeling",
             "rewardmodel.models", "rewardmodel.services", "rewardmodel.data", "margin.cli"} | JOB_ROOM,
    # dataio exports reward-model pairs (rewardmodel.data) and the rejection-sampling winners file
    "dataio": {"core", "annotation", "rewardmodel.data", "rlhf.models", "rlhf.rejection_sampling",
               "margin.cli", "margin.roles"} | JOB_ROOM,
    "dashboard": {"core", "annotation", "rewardmodel", "rlhf", "dataio", "margin.roles"} | JOB_ROOM,
}
# Files that take tensors, dataclasses and paths and run on CPU in a test (STYLE.md, rule 1).
DJANGO_FREE = ["core", "modelruntime", "rewardmodel/loss.py",
               "rewardmodel/modeling.py", "rlhf/ppo.py", "rlhf/rewards.py", "rlhf/generation.py",
               "rlhf/rejection_sampling.py", "rlhf/sft.py", "rlhf/reward_server.py", "rlhf/chat_text.py",
               "rlhf/dpo.py", "rlhf/gatt.py"]
PROJECT_PACKAGES = set(ALLOWED) | {"margin"}


def _imports(path: Path):
    """(line, module, at module level) for every import of a project package in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            names = names[:1] if any(n.split(".")[0] not in PROJECT_PACKAGES for n in names[:1]) else names
        else:
            continue
        yield node.lineno, names, id(node) in top


def _python_files(room):
    base = REPO / room
    files = [base] if base.suffix == ".py" else sorted(base.rglob("*.py"))
    return [f for f in files if "migrations" not in f.parts]


def _allowed(module, room):
    if module.split(".")[0] == room.split(".")[0]:
        return True
    return any(module == ok or module.startswith(ok + ".") for ok in ALLOWED[room])


@pytest.mark.parametrize("room", sorted(ALLOWED))
def test_each_room_imports_only_what_it_may(room):
    wrong = []
    for path in _python_files(room):
        for line, names, _ in _imports(path):
            module = names[0]
            if module.split(".")[0] not in PROJECT_PACKAGES:
                continue
            # `from rewardmodel import scoring` names the module rewardmodel.scoring
            if not any(_allowed(name, room) for name in names):
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("room", DJANGO_FREE)
def test_ml_code_and_shared_pieces_never_import_django(room):
    wrong = [f"{path.relative_to(REPO)}:{line}" for path in _python_files(room)
             for line, names, _ in _imports(path) if names[0].split(".")[0] in {"django", "celery"}]
    assert not wrong, wrong


def test_views_and_tasks_never_import_torch_at_module_level():
    heavy = {"torch", "transformers", "peft", "datasets", "modelruntime"}
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {names[0]}"
        for room in ALLOWED for path in _python_files(room) if path.name in ("views.py", "tasks.py")
        for line, names, at_top in _imports(path) if at_top and names[0].split(".")[0] in heavy
    ]
    assert not wrong, wrong


ANNOTATION_ROWS = ("Project", "Batch", "Dialogue", "Turn", "Response", "Comparison", "Assignment", "Judgment",
                   "Demonstration", "AnnotatorProfile", "AuditEvent")
WRITES = {"create", "bulk_create", "get_or_create", "update_or_create", "update", "delete", "save"}


def test_annotation_rows_are_written_only_by_annotation_services():
    """dataio, rlhf, the demo and the rest call annotation services; they never write those rows."""
    wrong = []
    for room in [r for r in PROJECT_PACKAGES if r != "annotation"]:
        for path in _python_files(room):
            for node in ast.walk(ast.parse(path.read_text())):
                # Model.objects.<query...>.<write>(...)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES:
                    chain = node.func.value
                    while isinstance(chain, (ast.Call, ast.Attribute)):
                        chain = chain.func if isinstance(chain, ast.Call) else chain.value
                    if isinstance(chain, ast.Name) and chain.id in ANNOTATION_ROWS:
                        wrong.append(f"{path.relative_to(REPO)}:{node.lineno} {chain.id}...{node.func.attr}()")
    assert not wrong, "\n".join(wrong)
