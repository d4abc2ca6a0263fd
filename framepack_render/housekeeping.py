"""`framepack cache ls | verify | gc | clear`: look after the content-addressed cache.

No torch: what a shot refers to is computed by the planner (``plan.entries.referenced``).
gc and clear hold the store's gc lock while they decide and delete, and never remove an entry a
live render holds a lease on (``Store.lease``). The cache is a folder or an fsspec URL
(``--cache s3://bucket/prefix`` with ``--storage-option``), the same commands for both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from .plan.entries import KINDS
from .store import Entry, Store, open_store
from .store.local import ENV_VAR
from .urls import is_url

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _console():
    from rich.console import Console

    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def human_size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError  # unreachable


def human_age(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:.0f}{unit} ago"
    return "just now"


def _dump(data: object) -> None:
    json.dump(data, sys.stdout, indent=2)
    print()


def storage_options(args: argparse.Namespace) -> dict[str, object]:
    """``--storage-option KEY=VALUE`` pairs as fsspec options (empty when none were given)."""
    return dict(getattr(args, "storage_option", None) or [])


def open_cache(args: argparse.Namespace) -> Store:
    """The store ``--cache`` and ``--storage-option`` name. With a folder cache and a URL
    ``--output-root``, the options are the output root's alone."""
    options = storage_options(args)
    root = getattr(args, "output_root", None)
    cache = args.cache if args.cache is not None else os.environ.get(ENV_VAR, "")
    if root is not None and is_url(root) and not is_url(cache or "."):
        options = {}
    return open_store(args.cache, options)


def _renders(count: int) -> str:
    return f"{count} running render" + ("" if count == 1 else "s")


# ---------------------------------------------------------------- ls


def ls(args: argparse.Namespace) -> int:
    store = open_cache(args)
    now = time.time()
    kinds: dict[str, list[Entry]] = defaultdict(list)
    for entry in store.entries():
        kinds[entry.kind].append(entry)
    order = [k for k in KINDS if k in kinds] + sorted(set(kinds) - set(KINDS))
    rows = {kind: {"entries": len(kinds[kind]), "bytes": sum(e.size for e in kinds[kind]),
                   "newest_use": max(e.used for e in kinds[kind]),
                   "oldest_use": min(e.used for e in kinds[kind])} for kind in order}
    leftovers = store.leftovers()
    renders = store.live_leases()
    total = sum(r["bytes"] for r in rows.values())
    if args.json:
        _dump({"cache": store.url, "kinds": rows, "bytes": total,
               "entries": sum(r["entries"] for r in rows.values()),
               "leftovers": [str(p) for p in leftovers], "running_renders": renders})
        return EXIT_OK
    from rich.table import Table

    console = _console()
    console.print(f"cache {store.url}", soft_wrap=True)
    if not rows:
        console.print("empty")
        return EXIT_OK
    table = Table(box=None, pad_edge=False)
    for column in ("kind", "entries", "size", "last used", "least recently used"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind, row in rows.items():
        table.add_row(kind, str(row["entries"]), human_size(row["bytes"]),
                      human_age(now - row["newest_use"]), human_age(now - row["oldest_use"]))
    table.add_row("total", str(sum(r["entries"] for r in rows.values())), human_size(total),
                  "", "", style="bold")
    console.print(table)
    if leftovers:
        console.print(f"{len(leftovers)} leftover temporary or lock files "
                      "(`framepack cache gc` removes them)")
    if renders:
        console.print(f"{_renders(renders)} using this cache (gc keeps what they use)")
    return EXIT_OK


# ---------------------------------------------------------------- verify


def verify(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress

    store = open_cache(args)
    entries = list(store.entries())
    corrupt: list[Entry] = []
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("verifying", total=len(entries))
        for entry in entries:
            if not store.verify(entry.kind, entry.key):
                corrupt.append(entry)
            progress.advance(task)
    if args.discard:
        for entry in corrupt:
            store.discard(entry.kind, entry.key)
    if args.json:
        _dump({"cache": store.url, "checked": len(entries),
               "corrupt": [{"kind": e.kind, "key": e.key, "path": str(e.path)} for e in corrupt],
               "discarded": bool(args.discard)})
    else:
        for entry in corrupt:
            print(f"corrupt {entry.kind} {entry.key}: {entry.path}"
                  + (" (discarded)" if args.discard else ""))
        print(f"checked {len(entries)} entries in {store.url}: "
              + (f"{len(corrupt)} corrupt" if corrupt else "all intact"))
    return EXIT_FAILED if corrupt and not args.discard else EXIT_OK


# ---------------------------------------------------------------- gc


def gc(args: argparse.Namespace) -> int:
    if not args.paths and args.older_than is None:
        print("framepack cache gc: give shot files or folders (remove what they do not use), "
              "--older-than AGE, or both", file=sys.stderr)
        return EXIT_INVALID
    keep: set[tuple[str, str]] | None = None
    if args.paths:
        keep = _referenced(args)
        if keep is None:
            return EXIT_INVALID
    store = open_cache(args)
    cutoff = time.time() - args.older_than if args.older_than is not None else None
    # A render registers its lease under this lock: it either listed its entries before we
    # look, or registers after we have deleted (and finds what it needs missing).
    with store.gc_lock():
        in_use = store.in_use()
        chosen = [e for e in store.entries()
                  if (keep is None or (e.kind, e.key) not in keep)
                  and (cutoff is None or e.used < cutoff)]
        held = [e for e in chosen if (e.kind, e.key) in in_use.keys]
        doomed = [e for e in chosen if (e.kind, e.key) not in in_use.keys]
        leftovers = store.leftovers()
        if not args.dry_run:
            for entry in doomed:
                store.discard(entry.kind, entry.key)
                store.remove(store.lock_path(entry.kind, entry.key))
            for path in leftovers:
                store.remove(path)
    freed = sum(e.size for e in doomed)
    verb = "would remove" if args.dry_run else "removed"
    if args.json:
        _dump({"cache": store.url, "dry_run": args.dry_run, "bytes": freed,
               "removed": [{"kind": e.kind, "key": e.key} for e in doomed],
               "leftovers": [str(p) for p in leftovers],
               "in_use": {"entries": len(held), "renders": in_use.renders}})
    else:
        if args.dry_run:
            for entry in doomed:
                print(f"{entry.kind} {entry.key} {human_size(entry.size)}")
        kept = "" if keep is None else f", keeping {len(keep)} entries the shots use"
        print(f"{verb} {len(doomed)} entries ({human_size(freed)}) and {len(leftovers)} "
              f"leftover files from {store.url}{kept}")
        if held:
            print(f"kept {len(held)} entries in use by {_renders(in_use.renders)}")
    return EXIT_OK


def _referenced(args: argparse.Namespace) -> set[tuple[str, str]] | None:
    """Every entry the shots under ``args.paths`` use; None (errors printed) when a shot
    file does not load and --skip-invalid was not given."""
    from .evaluate.score import referenced_scores
    from .plan import build_plan
    from .plan.entries import referenced
    from .shot import ShotError, load
    from .shot.discover import shot_files
    from .shot.errors import print_diagnostics

    keep: set[tuple[str, str]] = set()
    failed = False
    try:
        files = shot_files([Path(p) for p in args.paths], csv=args.template is not None)
    except ShotError as error:
        print_diagnostics(error.diagnostics)
        return None
    for path in files:
        try:
            loaded = load(path, sets=args.set, template=args.template,
                          output_root=args.output_root)
        except ShotError as error:
            print_diagnostics(error.diagnostics)
            failed = True
            continue
        for shot in loaded.shots:
            keep |= referenced(build_plan(shot))
        keep |= referenced_scores(loaded.shots)  # the scores of their current outputs
    if failed and not args.skip_invalid:
        print("nothing removed: a shot file above has errors and its entries cannot be told "
              "apart; fix it, leave it out, or pass --skip-invalid", file=sys.stderr)
        return None
    return keep


# ---------------------------------------------------------------- clear


def clear(args: argparse.Namespace) -> int:
    store = open_cache(args)
    if not args.yes:
        if not sys.stdin.isatty():
            print(f"framepack cache clear: this removes everything in {store.url}; "
                  "pass --yes to confirm", file=sys.stderr)
            return EXIT_INVALID
        answer = input(f"remove everything in {store.url}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing removed")
            return EXIT_OK
    with store.gc_lock():  # no render registers meanwhile
        renders = store.in_use().renders
        if renders:
            print(f"framepack cache clear: {_renders(renders)} using {store.url}; nothing "
                  "removed (wait for it, or `framepack cache gc --older-than 0s` removes every "
                  "entry not in use)", file=sys.stderr)
            return EXIT_INVALID
        entries = list(store.entries())
        store.clear()
    print(f"removed {len(entries)} entries ({human_size(sum(e.size for e in entries))}) "
          f"from {store.url}")
    return EXIT_OK
