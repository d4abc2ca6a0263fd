"""`framepack import`: shot files from what other FramePack tools leave behind.

Sources: musubi-tuner prompt files (``--from_file``), FramePack-Studio queues (ZIP export or
queue.json), job metadata JSON and timestamped prompts, FramePack-eichi section exports
(ZIP or sections.yaml), and Deforum settings files and Parseq manifests (flux-deforum shots). The format may be named or left to the file's shape. Every source file
is read and checked before anything is written; malformed input is one ``FILE:LINE:COL:``
line per mistake, exit 2, and nothing written. Importing never loads a model.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import textwrap
from pathlib import Path
from typing import Callable

from ..shot.errors import Diagnostic, Mark, ShotError, display_path, print_diagnostics
from .draft import Result, load_json
from .options import Options

EXIT_OK, EXIT_INVALID = 0, 2
FORMATS = {
    "musubi": "a musubi-tuner prompt file (fpack_generate_video.py --from_file): one shot per "
              "job line",
    "fpstudio": "a FramePack-Studio queue (ZIP export or queue.json) or job metadata JSON "
                "(one shot per job), or a text file of timestamped prompts (one shot per line; "
                "with --seconds and --image)",
    "eichi": "a FramePack-eichi section export (section_export_*.zip or sections.yaml): one "
             "shot",
    "deforum": "a Deforum settings file (*_settings.txt, JSON) or a Parseq manifest (JSON): "
               "one engine: flux-deforum shot",
}
DESCRIPTION = """\
Turn the job files of other FramePack tools into shot files in DIR, one per job, and print
their paths. Each shot starts with a comment naming its source (file and line, or job id).
Prompts, sections, seeds, sizes, lengths, steps, guidance, flow shift, start, end and section
images, one-frame options and LoRAs carry over as the source tool would have rendered them.
What cannot carry over (MagCache, a random seed, translated UI labels, unknown options...) is
a line FILE:LINE: warning: ... and a comment in the shot; a random seed is fixed (derived
from the source, so importing again gives the same shots).

Deforum settings files and Parseq manifests become engine: flux-deforum shots: prompts,
schedules (strength as 1 - Deforum's), seed, size and length; 3D motion, depth warping,
ControlNet and the like do not carry over and are warned about.

FORMAT is one of musubi, fpstudio, eichi, deforum; leave it out and the file's shape decides."""
EPILOG = """\
examples:
  framepack import musubi prompts.txt -o shots/
  framepack import queue.zip -o shots/                        # FP-Studio queue export
  framepack import outputs/250101_120000_123_4567.json -o shots/
  framepack import fpstudio timestamps.txt --seconds 6 --image start.png -o shots/
  framepack import section_export_20250501_120000.zip -o shots/ --lora-dir webui/lora
  framepack import 20240101_settings.txt -o shots/             # Deforum settings
  framepack import parseq-manifest.json --image start.png -o shots/
  framepack validate shots/*.yaml

Paths inside a source resolve as its tool resolves them (musubi-tuner: the working folder).
Images on disk are referenced from the shots (--copy-images copies them); images inside a ZIP
are copied to DIR/images/. A ZIP is read without extracting it; a hostile one (names that
climb out, links, a bomb) is refused.

exit status: 0 imported (or nothing to import), 2 invalid input (nothing written)."""
_OPTION = re.compile(r" --[A-Za-z_]+( |$)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of `framepack import`; ``run`` takes the parsed namespace."""
    parser.description = DESCRIPTION
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.usage = "%(prog)s [FORMAT] FILE... -o DIR [options]"
    parser.add_argument("inputs", nargs="+", metavar="FILE",
                        help="the files to import, after an optional FORMAT (" +
                             ", ".join(FORMATS) + ")")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR",
                        help="the folder the shot files go to (made if missing)")
    parser.add_argument("--seconds", type=_seconds, metavar="S",
                        help="the video's length, for FP-Studio timestamped prompts (and an "
                             "eichi export that does not record it)")
    parser.add_argument("--image", type=Path, metavar="IMG",
                        help="the start image, for sources that carry none (timestamped "
                             "prompts; a prompt line without --i; a job whose image is gone)")
    parser.add_argument("--model", choices=("framepack", "framepack-f1"),
                        help="the model, where the source does not say (musubi-tuner's --f1, "
                             "timestamped prompts); default framepack")
    parser.add_argument("--lora-dir", dest="lora_dirs", action="append", type=Path,
                        default=[], metavar="DIR",
                        help="a folder holding the LoRA files a source names (repeatable; "
                             "loras/ beside the source is also searched)")
    parser.add_argument("--copy-images", action="store_true",
                        help="copy images on disk into DIR/images/ instead of referencing them")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list of {source, shot, warnings} instead of paths")
    parser.add_argument("--force", action="store_true",
                        help="overwrite shot files that exist already")


def run(args: argparse.Namespace) -> int:
    """Import every file, then write every shot; 0 when done, 2 on invalid input."""
    try:
        fmt, files = split_format(list(args.inputs))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    options = Options(seconds=args.seconds, image=args.image, model=args.model,
                      lora_dirs=tuple(args.lora_dirs))
    results: list[Result] = []
    errors: list[Diagnostic] = []
    for file in files:
        try:
            results.append(import_file(Path(file), fmt, options))
        except ShotError as error:
            errors.extend(error.diagnostics)
    if errors:
        print_diagnostics(errors)
        return EXIT_INVALID
    from .write import write_drafts

    drafts = [d for r in results for d in r.drafts]
    try:
        written = write_drafts(drafts, args.output, force=args.force,
                               copy_images=args.copy_images) if drafts else []
    except ShotError as error:
        print_diagnostics(error.diagnostics)
        return EXIT_INVALID
    for caveat in [c for r in results for c in r.caveats] + \
            [c for w in written for c in w.caveats]:
        print(caveat, file=sys.stderr)
    if args.json:
        json.dump([w.as_json() for w in written], sys.stdout, indent=2, ensure_ascii=False)
        print()
    else:
        for shot in written:
            print(display_path(shot.shot))
        if not written:
            print("nothing to import", file=sys.stderr)
    return EXIT_OK


def split_format(inputs: list[str]) -> tuple[str | None, list[str]]:
    """(FORMAT or None, FILEs): a leading format name is a format unless it names a file."""
    first = inputs[0]
    if first in FORMATS and (len(inputs) > 1 or not Path(first).exists()):
        if len(inputs) == 1:
            raise ValueError(f"name the file(s) to import after '{first}'")
        return first, inputs[1:]
    return None, inputs


def import_file(path: Path, fmt: str | None, options: Options) -> Result:
    """The drafts of one source file, read by the importer ``fmt`` names or its shape picks."""
    if path.is_dir() and (path / "sections.yaml").is_file():
        path = path / "sections.yaml"
    fmt = fmt or detect(path)
    if fmt == "musubi" and path.suffix.lower() in (".zip", ".json"):
        raise ShotError.at(Mark(display_path(path)), "a musubi-tuner prompt file is text; this "
                                                     f"is a {path.suffix[1:].upper()} file")
    return _reader(fmt)(path, options)


def _reader(fmt: str) -> Callable[[Path, Options], Result]:
    if fmt == "musubi":
        from .musubi import read
    elif fmt == "fpstudio":
        from .fpstudio import read
    elif fmt == "deforum":
        from .deforum import read
    else:
        from .eichi import read
    return read


def detect(path: Path) -> str:
    """The format a file's shape says it is in; ShotError when it says none."""
    shown = display_path(path)
    if not path.exists():
        raise ShotError.at(Mark(shown), "no such file")
    if path.is_dir():
        raise ShotError.at(Mark(shown), "a folder; name the file to import")
    name = path.name.lower()
    if name.endswith(".zip"):
        return _detect_archive(path)
    if name.endswith(("sections.yaml", "sections.yml")):
        return "eichi"
    if name.endswith(".json"):
        return _detect_json(path)
    return _detect_text(path)


def _detect_archive(path: Path) -> str:
    from .zips import open_archive

    with open_archive(path) as archive:
        if archive.find("queue.json") is not None:
            return "fpstudio"
        if any(n.endswith(("sections.yaml", "sections.yml")) for n in archive.names()):
            return "eichi"
        raise ShotError.at(Mark(archive.shown), "neither an FP-Studio queue export (no "
                                                "queue.json) nor an eichi section export (no "
                                                "sections.yaml)")


def _detect_json(path: Path) -> str:
    from ..shot.yaml_loader import read_text
    from .deforum import is_parseq, is_settings
    from .fpstudio import is_metadata, is_queue

    shown = display_path(path)
    data = load_json(read_text(path, shown, "a JSON file"), shown)
    if is_settings(data) or is_parseq(data):
        return "deforum"
    if is_queue(data) or is_metadata(data):
        return "fpstudio"
    raise ShotError.at(Mark(shown, 1, 1), "not a JSON file this import knows (an FP-Studio "
                                          "queue.json or job metadata, Deforum settings or a "
                                          "Parseq manifest)")


def _detect_text(path: Path) -> str:
    from ..shot.yaml_loader import read_text
    from .fpstudio import TIMESTAMP

    shown = display_path(path)
    text = read_text(path, shown, "a prompt file")
    if text.lstrip().startswith("{"):  # Deforum saves its settings as JSON in a .txt file
        return _detect_json(path)
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    if any(_OPTION.search(line) for line in lines):
        return "musubi"
    if any(TIMESTAMP.search(line) for line in lines):
        return "fpstudio"
    hint = textwrap.shorten(f"name the format: framepack import musubi {shown} -o DIR, or "
                            f"framepack import fpstudio {shown} --seconds S --image IMG -o DIR",
                            400)
    raise ShotError.at(Mark(shown), "plain prompts with no musubi-tuner options and no "
                                    f"FP-Studio timestamps; {hint}")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("the length must be more than 0 and at most 3600 s")
    return value
