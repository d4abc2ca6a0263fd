"""The `framepack` command line: a thin layer over spec -> plan.

Exit codes: 0 success, 1 a render failed, 2 invalid input (nothing written), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import __version__
from .shot import Loaded, ShotError, check_collisions, load
from .shot.errors import print_diagnostics
from .store.protocol import StoreError, StoreUnavailable

if TYPE_CHECKING:
    from .run.events import RenderResult
    from .shot import Shot

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130

EXAMPLES = """\
examples:
  framepack render examples/quickstart/shot.yaml
  framepack render shot.yaml --set seed=7 --json
  framepack validate examples/quickstart/shot.yaml
  framepack plan examples/quickstart/shot.yaml
  framepack plan shot.yaml --set seed=7 --json
  framepack validate jobs.csv --template templates/talking-head.yaml
  framepack watch examples/quickstart
  framepack cache ls
  framepack cache gc shots/ --older-than 30d
  framepack render examples/matrix/shot.yaml --score
  framepack report examples/matrix -o report.html
  framepack watch --serve examples/quickstart
  framepack import prompts.txt -o shots/
  framepack import deforum settings.txt -o shots/
  framepack render examples/flux-deforum/shot.yaml
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
    except StoreError as error:  # one line naming the cache, never its credentials
        print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID if isinstance(error, StoreUnavailable) else EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framepack",
        description="Declarative, cached, incremental batch rendering for FramePack "
                    "image-to-video,\nand FLUX.1 Deforum animation (engine: flux-deforum).",
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
    render.add_argument("--score", action="store_true",
                        help="score each video output once rendered (drift, latency, "
                             "ghosting: see `framepack score`); --json adds them as \"scores\"")
    _render_options(render)

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

    watch = _verb(verbs, "watch", _watch, "re-render shots whenever they or their files change",
                  "Render each shot, then watch: saving a shot, a template it extends or an "
                  "image it uses re-renders it, with the models kept in memory between renders "
                  "and only the windows whose inputs changed sampled again. A folder stands for "
                  "every shot file under it (templates that other files extend are left out) "
                  "and new shot files in it are picked up. A burst of saves gives one render; "
                  "a save during a render cancels it at the next sampling step. An invalid save "
                  "prints its errors and the watch goes on. Ctrl-C stops (exit 130).")
    watch.add_argument("paths", nargs="+", metavar="PATH",
                       help="shot files or folders of shot files (CSVs of jobs with --template)")
    _shot_settings(watch)
    _cache_option(watch)
    watch.add_argument("--debounce", type=float, default=0.4, metavar="SECONDS",
                       help="wait this long after the last change before rendering (0.4)")
    watch.add_argument("--json", action="store_true",
                       help="print one JSON object per event on stdout (serving, watching, "
                            "started, rendered, cancelled, invalid, failed)")
    watch.add_argument("--serve", action="store_true",
                       help="show the renders live on a local web page: each shot's windows, "
                            "their last frames, the preview video and errors (needs "
                            "framepack-render[serve]; turns --preview on unless --no-preview)")
    watch.add_argument("--port", type=int, default=8765, metavar="N",
                       help="the live page's port (8765; 0 picks a free one, printed)")
    watch.add_argument("--host", default="127.0.0.1", metavar="HOST",
                       help="the address to serve on (127.0.0.1, this machine only; another "
                            "address lets other machines see your shots and outputs)")
    _render_options(watch)
    watch.set_defaults(force=False)

    _cache_verbs(verbs)
    _evaluate_verbs(verbs)
    _import_verb(verbs)

    models = _verb(verbs, "models", _models, "list model profiles and whether their weights "
                                             "are here",
                   "List each model profile (framepack, framepack-f1, tiny) and, for each "
                   "component, whether its weights are present on this machine and where they "
                   "were found: the shot's model mapping, the models file ($FRAMEPACK_MODELS or "
                   "the user config folder's framepack-render/models.yaml) or the Hugging Face "
                   "cache. Nothing is loaded or downloaded.")
    models.add_argument("--json", action="store_true", help="print the table as JSON")
    models.add_argument("--engine", choices=("framepack", "flux-deforum"), default="framepack",
                        help="list this engine's profiles (framepack; flux-deforum: "
                             "flux-schnell, flux-dev, tiny-flux)")
    from .engines.framepack.scan import add_scan_arguments

    add_scan_arguments(models)

    _verb(verbs, "schema", _schema, "print the shot file's JSON Schema",
          "Print schemas/shot.schema.json (JSON Schema 2020-12). Point your editor at it with "
          "a first line such as\n  # yaml-language-server: $schema=../schemas/shot.schema.json")
    return parser


def _evaluate_verbs(verbs: argparse._SubParsersAction) -> None:
    from .evaluate import report, score

    scoring = _verb(verbs, "score", score.run, "measure drift, transition latency and ghosting "
                                               "of rendered videos",
                    "Score videos in one pass each: the FramePack paper's drift (first 15% of "
                    "frames against the last 15%) of sharpness, colourfulness, BRISQUE and mean "
                    "colour; per frame SSIM and colour distance to the first frame and "
                    "frame-to-frame change; at each prompt change, the frames until the video "
                    "settles and how much of the previous scene lingers (ghosting), plus CLIP "
                    "text fidelity when CLIP weights are on this machine. A shot's outputs know "
                    "their prompt changes from their sidecars; give a bare video --at. Scores are "
                    "cached by the video's content, so scoring an unchanged batch is instant. "
                    "Needs framepack-render[evaluate].")
    score.add_arguments(scoring)
    page = _verb(verbs, "report", report.run, "one HTML page comparing a batch of renders",
                 "Write one self-contained HTML page for the shots given (files or folders): a "
                 "ranking by drift, then per shot its video, a contact sheet (a thumbnail per "
                 "window, keyframes and edits marked), the plan, the scores and their curves "
                 "over time with prompt changes marked; for a matrix, a grid along two of its "
                 "vars (--rows, --cols) with the scores under each cell. Unrendered shots say "
                 "so. Needs framepack-render[evaluate].")
    report.add_arguments(page)


def _import_verb(verbs: argparse._SubParsersAction) -> None:
    from . import importers

    parser = _verb(verbs, "import", importers.run, "turn musubi-tuner, FramePack-Studio, "
                                                   "FramePack-eichi, Deforum and Parseq files "
                                                   "into shot files",
                   "")
    importers.add_arguments(parser)  # its own description and examples


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
    _shot_settings(parser)


def _shot_settings(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", type=_set_item,
                        help="override a var (repeatable); values read as YAML: --set steps=30")
    parser.add_argument("--template", metavar="T.yaml",
                        help="treat each SHOT as a CSV of jobs: one shot per row over this "
                             "template, the columns as vars")
    parser.add_argument("--output-root", metavar="DIR|URL",
                        help="resolve outputs under DIR instead of each shot's folder; a URL "
                             "such as s3://bucket/renders uploads each output whole, its "
                             "sidecar last")


def _render_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preview", action=argparse.BooleanOptionalAction, default=None,
                        help="keep NAME.preview.mp4 beside the first output refreshed after "
                             "each window (default: on in a terminal)")
    parser.add_argument("--device", default=None, metavar="DEVICE",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--farm", metavar="ADDRESS",
                        help="render on a Ray cluster, a worker per GPU: auto (RAY_ADDRESS or "
                             "the cluster on this machine), ray://HOST:PORT, HOST:PORT, or "
                             "local:N (a private cluster of N workers on this machine, to try "
                             "it); needs framepack-render[farm]")


def _cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache", metavar="DIR|URL",
                        help="cache folder or fsspec URL such as s3://bucket/prefix (default: "
                             "$FRAMEPACK_CACHE or the user cache folder)")
    parser.add_argument("--storage-option", action="append", default=[], type=_storage_option,
                        metavar="KEY=VALUE",
                        help="an option for a URL cache's filesystem (repeatable), beside "
                             "fsspec's own config and FSSPEC_* variables: "
                             "--storage-option endpoint_url=http://minio:9000; values read "
                             "as JSON where they parse")


def _storage_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def _cache_verbs(verbs: argparse._SubParsersAction) -> None:
    from . import housekeeping

    cache = _verb(verbs, "cache", lambda args: args.cache_parser.print_help() or EXIT_INVALID,
                  "list, check and clean the render cache",
                  "The cache holds every prompt encoding, image encoding, window and decoded "
                  "segment, each in a folder named by the hash of its inputs. It may be shared "
                  "by several processes (entries are written atomically under a lock per "
                  "entry). Location: --cache, else $FRAMEPACK_CACHE, else the user cache folder.")
    cache.set_defaults(cache_parser=cache)
    actions = cache.add_subparsers(title="actions", metavar="ACTION")

    ls = _verb(actions, "ls", housekeeping.ls, "entries and sizes by kind",
               "Count the entries of each kind (prompt, image, window, frames, edit) with their "
               "sizes and when they were last used, plus temporary files left by processes "
               "that died.")
    verify = _verb(actions, "verify", housekeeping.verify, "re-hash every entry",
                   "Read every entry and check each file's size and SHA-256 against its "
                   "manifest. Corrupt entries are listed (exit 1); --discard removes them, and "
                   "the next render makes them again.")
    verify.add_argument("--discard", action="store_true", help="remove corrupt entries")
    gc = _verb(actions, "gc", housekeeping.gc, "remove entries no shot uses, or old ones",
               "With PATHs (shot files or folders of them), remove every entry that no shot "
               "there refers to; with --older-than, remove entries not used for that long; "
               "with both, remove entries that are unused by those shots AND that old (so "
               "recent work of shots elsewhere on a shared cache survives). Temporary files "
               "of processes that died are removed too. A shot file that does not load stops "
               "gc (nothing is removed) unless --skip-invalid.")
    gc.add_argument("paths", nargs="*", metavar="PATH", help="shot files or folders of them")
    _shot_settings(gc)
    gc.add_argument("--older-than", metavar="AGE", type=_age,
                    help="an age such as 45m, 12h, 30d or 2w (last use: the last read)")
    gc.add_argument("--dry-run", action="store_true", help="list what would go; remove nothing")
    gc.add_argument("--skip-invalid", action="store_true",
                    help="go on when a shot file has errors (its entries may be removed)")
    clear = _verb(actions, "clear", housekeeping.clear, "remove every entry",
                  "Remove the whole cache. Asks first in a terminal; elsewhere needs --yes.")
    clear.add_argument("--yes", action="store_true", help="do not ask")
    for parser in (ls, verify, gc, clear):
        _cache_option(parser)
    for parser in (ls, verify, gc):
        parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _age(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        value, unit = float(text[:-1]), units[text[-1:].lower()]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an age; write a number and a unit: 45m, 12h, 30d or 2w") from None
    if value < 0:
        raise argparse.ArgumentTypeError("an age cannot be negative")
    return value * unit


def _set_item(text: str) -> str:
    from .shot.templates import split_set

    try:
        split_set(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


# ---------------------------------------------------------------- commands


def _load_all(args: argparse.Namespace) -> tuple[list[Loaded], bool]:
    """Load every SHOT argument, printing errors; a failed file does not stop the others."""
    from .housekeeping import storage_options

    results: list[Loaded] = []
    failed = False
    for shot in args.shots:
        try:
            results.append(load(shot, sets=args.set, template=args.template,
                                output_root=args.output_root,
                                storage_options=storage_options(args)))
        except ShotError as error:
            print_diagnostics(error.diagnostics)
            failed = True
    if len(results) > 1:
        collisions = check_collisions([s for r in results for s in r.shots])
        if collisions.errors:
            print_diagnostics(collisions.errors)
            failed = True
    return results, failed


def _validate(args: argparse.Namespace) -> int:
    from .plan import build_plan
    from .report import describe_shot

    results, failed = _load_all(args)
    for loaded in results:
        print_diagnostics(loaded.warnings)
        for shot in loaded.shots:
            plan = build_plan(shot)
            for note in plan.notes:
                print(note)
            print(f"ok {describe_shot(shot, plan)}")
    return EXIT_INVALID if failed else EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from .housekeeping import open_cache
    from .plan import build_plan, mark_cached
    from .report import plan_json, print_plan

    results, failed = _load_all(args)
    if failed:
        return EXIT_INVALID
    store = open_cache(args)
    plans = []
    for loaded in results:
        print_diagnostics(loaded.warnings)
        for shot in loaded.shots:
            plan = build_plan(shot)
            mark_cached(plan, store)
            plans.append(plan)
    if args.json:
        json.dump({"cache": store.url, "plans": [plan_json(p) for p in plans]},
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


class _Renders:
    """Renders shots for `render` and `watch`. A shot whose outputs are up to date is answered
    from their sidecars without importing torch; the first real work starts a resident
    Session (models load lazily inside it, each once per process)."""

    def __init__(self, args: argparse.Namespace, observer: object):
        from .housekeeping import open_cache

        self.args = args
        self.store = open_cache(args)
        self.observer = observer
        self.session = None

    def __call__(self, shot: "Shot", cancel: object = None) -> "RenderResult":
        from .plan import build_plan
        from .run.events import up_to_date_result

        plan = build_plan(shot)
        if not self.args.force and (current := up_to_date_result(plan, self.store)) is not None:
            return current
        if self.session is None:
            import torch

            from .run.executor import Session

            device = self.args.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self.session = Session(self.store, device)
        preview = sys.stderr.isatty() if self.args.preview is None else self.args.preview
        return self.session.render(plan, force=self.args.force, observer=self.observer,
                                   preview=preview, cancel=cancel)


def _result_line(result: "RenderResult") -> str:
    if result.outputs_up_to_date:
        return f"{result.shot}: up to date {', '.join(result.outputs)}"
    return (f"  wrote {', '.join(result.outputs)} ({result.windows_rendered} sampled, "
            f"{result.windows_cached} cached, {result.seconds['total']:.1f} s)")


def _render(args: argparse.Namespace) -> int:
    import time

    from .output.remote import check

    results, failed = _load_all(args)
    if failed:
        return EXIT_INVALID
    check(shot.destination for loaded in results for shot in loaded.shots)
    if args.score and (hint := _score_missing()) is not None:
        print(f"error: --score {hint}", file=sys.stderr)
        return EXIT_INVALID
    if args.farm:  # workers on a Ray cluster render; this process hands out the shots
        from .run.farm import render_on_farm

        return render_on_farm(args, results, _result_line,
                              lambda shots: _score_renders(args, shots))
    from rich.console import Console

    from .run.progress import RichObserver
    from .run.events import ModelError, RenderError

    console = Console(stderr=True, highlight=False)
    summaries = []
    rendered: list["Shot"] = []
    started = time.perf_counter()
    status = EXIT_OK
    with RichObserver(console) as observer:
        renders = _Renders(args, observer)
        for loaded in results:
            print_diagnostics(loaded.warnings)
            for shot in loaded.shots:
                try:
                    result = renders(shot)
                except ModelError as error:
                    print(f"{shot.model.mark}: {error}", file=sys.stderr)
                    return EXIT_INVALID
                except RenderError as error:
                    print(f"error: {error}", file=sys.stderr)
                    status = EXIT_FAILED
                    continue
                summaries.append(result)
                rendered.append(shot)
                console.print(_result_line(result), soft_wrap=True, markup=False)
    extra = _score_renders(args, rendered, renders.store)
    if extra.pop("failed", False):
        status = EXIT_FAILED
    if args.json:
        from dataclasses import asdict

        json.dump({"shots": [asdict(s) for s in summaries],
                   "windows_rendered": sum(s.windows_rendered for s in summaries),
                   "windows_cached": sum(s.windows_cached for s in summaries),
                   "outputs": [o for s in summaries for o in s.outputs],
                   "seconds": round(time.perf_counter() - started, 3),
                   "cache": renders.store.url, "ok": status == EXIT_OK, **extra}, sys.stdout,
                  indent=2)
        print()
    return status


def _score_missing() -> str | None:
    """Why scores cannot be made here (a package missing), or None."""
    from .evaluate.score import INSTALL, missing_dependencies

    missing = missing_dependencies()
    return f"needs {', '.join(missing)}: {INSTALL}" if missing else None


def _score_renders(args: argparse.Namespace, shots: list["Shot"],
                   store: object = None) -> dict[str, object]:
    """`render --score`: score the video outputs of the shots just rendered; a table on
    stdout, or with --json the fields ``scores`` (and ``failed``) for the summary."""
    if not args.score:
        return {}
    from .evaluate.score import ScoreError, print_table, score_outputs
    from .housekeeping import open_cache

    try:
        videos = score_outputs(shots, store if store is not None else open_cache(args))
    except ScoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return {"scores": None, "failed": True}
    if not args.json and videos:
        print_table(videos)
    return {"scores": videos}


def _watch(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .run.progress import RichObserver
    from .shot.discover import shot_files
    from .run.watch import ConsoleReport, FanOut, Watcher
    from .housekeeping import storage_options

    try:  # a mistyped path fails now rather than being watched for ever
        shot_files([Path(p) for p in args.paths])
    except ShotError as error:
        print_diagnostics(error.diagnostics)
        return EXIT_INVALID
    if args.serve:
        from .run.live import missing_dependency

        if (hint := missing_dependency()) is not None:
            print(f"error: {hint}", file=sys.stderr)
            return EXIT_INVALID
        if args.preview is None:  # the page's thumbnails and video come from the preview
            args.preview = True
    console = Console(stderr=True, highlight=False)

    def load_path(path: Path) -> Loaded:
        return load(path, sets=args.set, template=args.template, output_root=args.output_root,
                    storage_options=storage_options(args))

    with ExitStack() as stack:
        report = ConsoleReport(console, json_lines=args.json, line=_result_line)
        live = _serve(args, console, stack) if args.serve else None
        if args.serve and live is None:
            return EXIT_INVALID
        if args.farm:  # workers on a Ray cluster render; this process watches
            from .run.farm import FarmError, farm_renders

            try:
                renders = stack.enter_context(farm_renders(args, console))
            except FarmError as error:
                print(f"error: {error}", file=sys.stderr)
                return EXIT_INVALID
        else:
            progress = stack.enter_context(RichObserver(console))
            renders = _Renders(args, progress if live is None else FanOut(progress, live))
        watcher = Watcher([Path(p) for p in args.paths], load_path, renders,
                          report if live is None else FanOut(report, live),
                          debounce=args.debounce, csv=args.template is not None)
        try:
            watcher.run()
        except KeyboardInterrupt:
            console.print("stopped watching")
            return EXIT_INTERRUPTED
    return EXIT_OK


def _serve(args: argparse.Namespace, console: object, stack: ExitStack) -> object:
    """Start the live page's server (stopped when ``stack`` closes); returns what the watch
    reports to, or None after printing why the address cannot be served."""
    from .run.live import Hub, LivePage, LiveServer

    live = LivePage(Hub(), line=_result_line)
    try:
        server = stack.enter_context(LiveServer(live.hub, args.host, args.port))
    except OSError as error:
        print(f"error: cannot serve the live page on {args.host}:{args.port}: "
              f"{error.strerror or error}; choose another --port (0 picks a free one)",
              file=sys.stderr)
        return None
    console.print(f"live page: {server.url}", soft_wrap=True)
    if not server.local:
        console.print(f"warning: {server.url} is open to other machines: whoever reaches it "
                      "sees these shots and their outputs", soft_wrap=True)
    if args.json:
        print(json.dumps({"event": "serving", "url": server.url}), flush=True)
    return live


def _models(args: argparse.Namespace) -> int:
    if args.write and not args.scan:
        print("error: --write writes what --scan DIR finds; give --scan DIR", file=sys.stderr)
        return EXIT_INVALID
    if args.scan:
        from .engines.framepack.scan import run_scan

        return run_scan(args)
    from rich.console import Console
    from rich.table import Table

    from .profiles import PROFILES
    from .engines.framepack.lookup import ModelError, availability, default_models_file

    from .engines.flux_deforum.lookup import availability as flux_availability

    if args.engine != "framepack":
        availability = flux_availability
    try:
        report = {name: availability(name) for name, profile in PROFILES.items()
                  if profile.engine == args.engine}
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
    from .shot.schema import schema_text

    sys.stdout.write(schema_text())
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
