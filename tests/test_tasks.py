"""The render as a task graph: every task declares what it reads and writes, and the graph
covers exactly the entries a render uses. No torch."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from framepack_render.plan import build_plan
from framepack_render.plan.entries import referenced
from framepack_render.plan.tasks import TASK_KINDS, tasks
from framepack_render.shot import load

from .conftest import REPO

SHOTS = sorted(p for p in (REPO / "examples").glob("*/*.yaml"))
ORDERS = ("inverted", "forward", "endpoints-first")


def plans(path: Path, **sets: str):
    loaded = load(path, sets=[f"{k}={v}" for k, v in sets.items()])
    return [build_plan(shot) for shot in loaded.shots]


@pytest.mark.parametrize("path", SHOTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_every_task_reads_only_what_an_earlier_task_wrote(path):
    for plan in plans(path):
        written: set[tuple[str, str]] = set()
        for task in tasks(plan):
            assert task.kind in TASK_KINDS
            assert set(task.reads) <= written, (task.label, set(task.reads) - written)
            assert task.writes not in written, f"{task.label} is listed twice"
            written.add(task.writes)


@pytest.mark.parametrize("path", SHOTS, ids=lambda p: p.parent.name + "/" + p.name)
def test_the_tasks_write_exactly_the_entries_a_render_uses(path):
    for plan in plans(path):
        entries = {task.writes for task in tasks(plan) if task.kind != "output"}
        assert entries == referenced(plan)
        assert [t.kind for t in tasks(plan)].count("output") == 1


@pytest.mark.parametrize("sampling", ORDERS)
def test_windows_run_in_generation_order_after_their_encodings(sampling, tmp_path):
    shutil.copytree(REPO / "examples" / "quickstart", tmp_path / "q")
    path = tmp_path / "q" / "shot.yaml"
    text = path.read_text().replace("end_image:", "# end_image:")
    path.write_text(text + f"sampling: {sampling}\n")
    (plan,) = plans(path)
    graph = tasks(plan)
    windows = [t.subject for t in graph if t.kind == "window"]
    assert [w.key for w in windows] == [w.key for w in plan.generation_order]
    # Each window reads the window generated just before it, and its own prompt.
    for task in (t for t in graph if t.kind == "window"):
        node = task.subject
        if node.after is not None:
            assert ("window", node.after) in task.reads
        assert any(kind == "prompt" for kind, _ in task.reads)
    # The first segment decodes from the start image.
    first_segment = next(t for t in graph if t.kind == "frames")
    assert any(kind == "image" for kind, _ in first_segment.reads)


def test_the_task_graph_needs_no_torch():
    import subprocess

    code = ("import sys; from framepack_render.plan.tasks import tasks; "
            "from framepack_render.plan import build_plan; from framepack_render.shot import load; "
            f"[tasks(build_plan(s)) for s in load({str(SHOTS[0])!r}).shots]; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
