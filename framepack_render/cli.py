"""The `framepack` command line: a thin layer over spec -> plan.

Exit codes: 0 success, 1 a render failed, 2 invalid input (nothing written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from pathlib import Path
from typing import Callable

from . import __version__
from .spec import Loaded, ShotError, check_collisions, load
from .spec.errors import Diagnostic

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """\
examples:
  framepack render examples/quickstart/shot.yaml
  framepack render shot.yaml --set seed=7 --json
  framepack validate examples/quickstart/shot.yaml
  framepack plan examples/quickstart/shot.yaml
  framepack plan shot.yaml --set seed=7 --json
  framepack validate jobs.csv --template templates/talking-head.yaml
  framepack schema > shot.schema.json

A shot file is YAML; its reference is `framepack schema` (JSON Schema, also usable by editors
with yaml-language-server). Errors print as FILE:LINE:COL: message.

exit status: 0 success, 1 a render failed, 2 invalid input (nothing written), 130 interrupted.
"""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `framepack plan ... | head`
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framepack",
        description="Declarative, cached, incremental batch rendering for FramePack "
                    "image-to-video.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"framepack-render {__version__}")
    verbs = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    render = _verb(verbs, "render", _render, "render shots to video, reusing every cached window",
                   "Render each shot window by window with a resident model. Every window, "
                   "encoding and decoded segment is cached by the hash of its inputs, so an "
                   "unchanged shot renders nothing and an edited one renders only the windows "
                   "whose inputs changed (and those generated after them). Outputs are "
                   "replaced whole, never left half written. Exit 1 if a render fails, 2 for "
                   "invalid input or missing model weights.")
    _shot_options(render)
    _cache_option(render)
    render.add_argument("--force", action="store_true",
                        help="ignore cached entries and render everything again")
    render.add_argument("--json", action="store_true",
                        help="print a JSON summary on stdout (progress goes to stderr)")
    render.add_argument("--preview", action=argparse.BooleanOptionalAction, default=None,
                        help="keep NAME.preview.mp4 beside the first output refreshed after "
                             "each window (default: on in a terminal)")
    render.add_argument("--device", default=None, metavar="DEVICE",
                        help="torch device (default: cuda if available, else cpu)")

    validate = _verb(verbs, "validate", _validate,
                     "check shot files and their images; render nothing",
                     "Check each shot against the schema and its files on disk (images exist "
                     "and decode, edits resolve, outputs stay inside the shot's folder). Model "
                     "weights are not needed. Prints one line per shot; exit 2 on any error.")
    _shot_options(validate)

    plan = _verb(verbs, "plan", _plan, "show the windows and edits a shot will render",
                 "Compile a shot into its graph of edits and generation windows and print it: "
                 "each window's time span, prompt, clean prefix image, generation order, flow "
                 "shift, cache key and whether it is already cached.")
    _shot_options(plan)
    _cache_option(plan)
    plan.add_argument("--json", action="store_true",
                      help="print the plans as JSON (keys, layouts, shifts) instead of tables")

    models = _verb(verbs, "models", _models, "list model profiles and whether their weights "
                                             "are here",
                   "List each model profile (framepack, framepack-f1, tiny) and, for each "
                   "component, whether its weights are present on this machine and where they "
                   "were found: the shot's model mapping, the models file ($FRAMEPACK_MODELS or "
                   "the user config folder's framepack-render/models.yaml) or the Hugging Face "
                   "cache. Nothing is loaded or downloaded.")
    models.add_argument("--json", action="store_true", help="print the table as JSON")

    _verb(verbs, "schema", _schema, "print the shot file's JSON Schema",
          "Print schemas/shot.schema.json (JSON Schema 2020-12). Point your editor at it with "
          "a first line such as\n  # yaml-language-server: $schema=../schemas/shot.schema.json")
    return parser


def _verb(verbs: argparse._SubParsersAction, name: str, run: Callable[[argparse.Namespace], int],
          summary: str, description: str) -> argparse.ArgumentParser:
    wrapped = "\n".join(textwrap.fill(line, 88) for line in description.splitlines())
    parser = verbs.add_parser(name, help=summary, description=wrapped,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(run=run)
    return parser


def _shot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shots", nargs="+", metavar="SHOT",
                        help="shot files (or CSVs of jobs with --template)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", type=_set_item,
                        help="override a var (repeatable); values read as YAML: --set steps=30")
    parser.add_argument("--template", metavar="T.yaml",
                        help="treat each SHOT as a CSV of jobs: one shot per row over this "
                             "template, the columns as vars")
    parser.add_argument("--output-root", metavar="DIR",
                        help="resolve outputs under DIR instead of each shot's folder")


def _cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", metavar="DIR",
                        help="cache folder (default: $FRAMEPACK_CACHE or the user cache folder)")


def _set_item(text: str) -> str:
    from .spec.templates import split_set

    try:
        split_set(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# ---------------------------------------------------------------- commands


def _load_all(args: argparse.Namespace) -> tuple[list[Loaded], bool]:
    """Load every SHOT argument, printing errors; a failed file does not stop the others."""
    results: list[Loaded] = []
    failed = False
    for shot in args.shots:
        try:
            results.append(load(shot, sets=args.set, template=args.template,
                                output_root=args.output_root))
        except ShotError as error:
            _print_diagnostics(error.diagnostics)
            failed = True
    if len(results) > 1:
        collisions = check_collisions([s for r in results for s in r.shots])
        if collisions.errors:
            _print_diagnostics(collisions.errors)
            failed = True
    return results, failed


def _validate(args: argparse.Namespace) -> int:
    from .plan import build_plan
    from .report import describe_shot

    results, failed = _load_all(args)
    for loaded in results:
        _print_diagnostics(loaded.warnings)
        for shot in loaded.shots:
            plan = build_plan(shot)
            for note in plan.notes:
                print(note)
            print(f"ok {describe_shot(shot, plan)}")
    return EXIT_INVALID if failed else EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from .cache import CacheStore
    from .plan import build_plan, mark_cached
    from .report import plan_json, print_plan

    results, failed = _load_all(args)
    if failed:
        return EXIT_INVALID
    store = CacheStore(args.cache)
    plans = []
    for loaded in results:
        _print_diagnostics(loaded.warnings)
        for shot in loaded.shots:
            plan = build_plan(shot)
            mark_cached(plan, store)
            plans.append(plan)
    if args.json:
        json.dump({"cache": str(store.root), "plans": [plan_json(p) for p in plans]},
                  sys.stdout, indent=2)
        print()
        return EXIT_OK
    from rich.console import Console

    # Piped output (CI logs, files) gets a wide table rather than an 80-column guess.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    for i, plan in enumerate(plans):
        if i:
            console.print()
        print_plan(console, plan)
    return EXIT_OK


def _render(args: argparse.Namespace) -> int:
    import time

    results, failed = _load_all(args)
    if failed:
        return EXIT_INVALID
    from rich.console import Console

    from .cache import CacheStore
    from .plan import build_plan
    from .plan.keys import canonical, model_identity
    from .progress import RichObserver
    from .render.executor import Renderer, RenderError
    from .render.models import ModelError, ModelPool

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    console = Console(stderr=True, highlight=False)
    store = CacheStore(args.cache)
    pools: dict[str, ModelPool] = {}
    summaries = []
    started = time.perf_counter()
    status = EXIT_OK
    with RichObserver(console) as observer:
        for loaded in results:
            _print_diagnostics(loaded.warnings)
            for shot in loaded.shots:
                identity = canonical(model_identity(shot.model))
                pool = pools.setdefault(identity, ModelPool(shot.model, device=device))
                preview = sys.stderr.isatty() if args.preview is None else args.preview
                renderer = Renderer(pool, store, force=args.force, observer=observer,
                                    preview=preview)
                try:
                    result = renderer.render(build_plan(shot))
                except ModelError as error:
                    print(f"{shot.model.mark}: {error}", file=sys.stderr)
                    return EXIT_INVALID
                except RenderError as error:
                    print(f"error: {error}", file=sys.stderr)
                    status = EXIT_FAILED
                    continue
                summaries.append(result)
                verb = "up to date" if result.outputs_up_to_date else "wrote"
                console.print(f"  {verb} {', '.join(result.outputs)} "
                              f"({result.windows_rendered} sampled, {result.windows_cached} "
                              f"cached, {result.seconds['total']:.1f} s)", soft_wrap=True)
    if args.json:
        from dataclasses import asdict

        json.dump({"shots": [asdict(s) for s in summaries],
                   "windows_rendered": sum(s.windows_rendered for s in summaries),
                   "windows_cached": sum(s.windows_cached for s in summaries),
                   "outputs": [o for s in summaries for o in s.outputs],
                   "seconds": round(time.perf_counter() - started, 3),
                   "cache": str(store.root), "ok": status == EXIT_OK}, sys.stdout, indent=2)
        print()
    return status


def _models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .profiles import PROFILES
    from .render.models import ModelError, availability, default_models_file

    try:
        report = {name: availability(name) for name in PROFILES}
    except ModelError as error:
        print(error, file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        json.dump({name: {"description": PROFILES[name].description,
                          "available": all(ok for _, ok, _ in rows),
                          "components": [{"name": c, "available": ok, "where": where}
                                         for c, ok, where in rows]}
                   for name, rows in report.items()}, sys.stdout, indent=2)
        print()
        return EXIT_OK
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
    for name, rows in report.items():
        ready = all(ok for _, ok, _ in rows)
        console.print(f"[bold]{name}[/] — {PROFILES[name].description}: "
                      + ("[green]ready[/]" if ready else "[yellow]weights missing[/]"))
        table = Table(show_header=False, box=None, pad_edge=False)
        for component, ok, where in rows:
            table.add_row(f"  {component}", "[green]yes[/]" if ok else "[red]no[/]", where)
        console.print(table)
    console.print(f"models file: {default_models_file()}", soft_wrap=True)
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from .spec.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


def _print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
