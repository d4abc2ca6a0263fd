"""Positions and user-facing diagnostics.

Every mistake in a shot file is reported as one line, ``FILE:LINE:COL: message``, with a
suggestion where one exists. Diagnostics are collected rather than raised one at a time so
that a file with three typos reports all three at once.
"""

from __future__ import annotations

import difflib
import os
import sys
from dataclasses import dataclass, field
from typing import Iterable


@dataclass(frozen=True, order=True)
class Mark:
    """A position in a source file; line and col are 1-based (1:1 for the file as a whole)."""

    file: str
    line: int = 1
    col: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


def display_path(path: str | os.PathLike[str]) -> str:
    """A path as the user would type it: relative to the working directory when inside it."""
    path = os.fspath(path)
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return path
    return path if rel.startswith("..") else rel


def suggest(word: str, choices: Iterable[str]) -> str:
    """' did you mean 'x'?' for a near miss, else ''."""
    options = sorted({str(c) for c in choices})
    match = difflib.get_close_matches(str(word), options, n=1, cutoff=0.6)
    if not match:
        # Case slips ("Balanced") and prefixes ("dyn") are near misses too.
        lowered = {o.lower(): o for o in options}
        if str(word).lower() in lowered:
            match = [lowered[str(word).lower()]]
    return f"; did you mean '{match[0]}'?" if match else ""


def suggest_file(path: "os.PathLike[str] | str") -> str:
    """' did you mean 'x'?' naming a file beside ``path`` with a similar name."""
    folder = os.path.dirname(os.fspath(path)) or "."
    try:
        names = [e.name for e in os.scandir(folder) if e.is_file()]
    except OSError:
        return ""
    return suggest(os.path.basename(os.fspath(path)), names)


@dataclass(frozen=True)
class Diagnostic:
    mark: Mark
    message: str
    severity: str = "error"  # "error" | "warning"

    def __str__(self) -> str:
        prefix = "" if self.severity == "error" else f"{self.severity}: "
        # One line, whatever the message contains.
        text = " ".join(f"{prefix}{self.message}".split())
        return f"{self.mark}: {text}"


def print_diagnostics(diagnostics: Iterable["Diagnostic"]) -> None:
    """Each diagnostic as its one line on stderr."""
    for diagnostic in diagnostics:
        print(diagnostic, file=sys.stderr, flush=True)


class ShotError(Exception):
    """One or more input errors. Raised out of the spec and plan layers; the CLI prints them."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=lambda d: d.mark)
        super().__init__("\n".join(str(d) for d in self.diagnostics))

    @classmethod
    def at(cls, mark: Mark, message: str) -> "ShotError":
        return cls([Diagnostic(mark, message)])


@dataclass
class Report:
    """Collects errors and warnings while checking a shot."""

    errors: list[Diagnostic] = field(default_factory=list)
    warnings: list[Diagnostic] = field(default_factory=list)
    _seen: set[Diagnostic] = field(default_factory=set, repr=False)  # duplicates in O(1)
    # Errors reported, duplicates included: a step checks "did I find an error" by this count,
    # since a matrix's second shot repeats its first's errors, which are listed only once.
    made: int = 0

    def error(self, mark: Mark, message: str) -> None:
        self.made += 1
        self._add(self.errors, Diagnostic(mark, message))

    def warn(self, mark: Mark, message: str) -> None:
        self._add(self.warnings, Diagnostic(mark, message, "warning"))

    def _add(self, into: list[Diagnostic], diagnostic: Diagnostic) -> None:
        if diagnostic not in self._seen:
            self._seen.add(diagnostic)
            into.append(diagnostic)

    def raise_if_errors(self) -> None:
        if self.errors:
            raise ShotError(self.errors)

    def extend(self, other: "Report") -> None:
        for d in other.errors:
            self.error(d.mark, d.message)
        for d in other.warnings:
            self.warn(d.mark, d.message)
