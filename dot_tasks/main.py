"""The `dot-tasks` console script: an Invoke Program over the same tasks as `inv`.

It only parses and dispatches: `cli_grammar.canonical_argv` reads the command
line (refusing, in one line, anything it cannot read), `cli_help` prints
dot-tasks' own help, and `DotProgram` is the error boundary around Invoke's
parse, the project's invoke.yaml and a reader that goes away (`| head -1`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Exit, Program
from invoke.config import AmbiguousMergeError
from invoke.exceptions import ParseError

from . import __version__
from .cli_grammar import canonical_argv, grammars
from .cli_help import command_help, program_help
from .errors import DotError
from .tasks import ns

_CONFIG_NAMES = ("invoke.yaml", "invoke.yml", "invoke.json")

#: Exit code of a command line that cannot be read (dbt's and argparse's "error").
USAGE_ERROR = 2
#: What a shell reports for a process stopped by SIGPIPE (128 + 13), as `git log | head -1` does.
BROKEN_PIPE = 141


def find_project_config(start: Path) -> Path | None:
    """The nearest directory upward of `start` holding an invoke.yaml, up to the git root."""
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in _CONFIG_NAMES):
            return directory
        if (directory / ".git").exists():
            return None
    return None


def _quiet_broken_pipe() -> None:
    """The reader went away (`| head -1`): stop writing, and say nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout already gone
        pass


class DotProgram(Program):
    """Loads the project's invoke.yaml (which a Program with a bundled namespace skips) and speaks for itself."""

    def run(self, argv: list[str] | None = None, exit: bool = True) -> None:
        """Run a command line (`sys.argv` by default); a closed stdout ends the program quietly, as git's does."""
        try:
            super().run(argv, exit)
            sys.stdout.flush()
        except BrokenPipeError:
            _quiet_broken_pipe()
            if exit:
                sys.exit(BROKEN_PIPE)
        except SystemExit:
            # Invoke exits from inside run(); Python flushes stdout after this, too late to catch.
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                _quiet_broken_pipe()
            raise

    def parse_collection(self) -> None:
        """Invoke's collection, then the nearest invoke.yaml upward of the current directory."""
        super().parse_collection()
        location = find_project_config(Path.cwd())
        if location is not None:
            self.config.set_project_location(str(location))
            try:
                self.config.load_project()
            except (ValueError, OSError) as exc:  # unreadable YAML: say which file, not a traceback
                raise Exit(f"dot-tasks: {location}/invoke.yaml cannot be used: {exc}", code=2) from None

    def parse_tasks(self) -> None:
        """Invoke's parse of the canonical command line, its refusals said in dot-tasks' voice."""
        # canonical_argv has refused what it cannot read; anything Invoke still
        # refuses is said in dot-tasks' voice, not Invoke's.
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"dot-tasks: {exc} (dot-tasks --help)", code=USAGE_ERROR) from None

    def execute(self) -> None:
        """Run the parsed command; a configuration of the wrong shape exits 2 in one line."""
        # Invoke merges invoke.yaml into the tasks' defaults only now, and a
        # value of the wrong shape (a list where a mapping belongs) fails here.
        try:
            super().execute()
        except AmbiguousMergeError as exc:
            raise Exit(f"dot-tasks: invoke.yaml cannot be used: {exc}", code=2) from None

    def normalize_argv(self, argv: list[str] | None) -> None:
        """Invoke's argv, read first by `canonical_argv`: a command line it cannot read exits 2 in one line."""
        super().normalize_argv(argv)
        try:
            self.argv = canonical_argv(list(self.argv), self.namespace or ns)
        except DotError as exc:
            raise Exit(f"dot-tasks: {exc}", code=USAGE_ERROR) from None

    def print_help(self) -> None:
        """`dot-tasks --help`: the commands under headings, the options, examples."""
        print(program_help(self.namespace or ns))

    def print_task_help(self, name: str) -> None:
        """`dot-tasks <command> --help`."""
        print(command_help(name, self.namespace or ns))

    def list_tasks(self) -> None:
        """`dot-tasks --list`: each command and its one-line summary."""
        known = grammars(self.namespace or ns)
        width = max(len(name) for name in known) + 2
        print("\n".join(f"{name:<{width}}{grammar.summary}" for name, grammar in known.items()))


#: The console script (`dot-tasks = "dot_tasks.main:program.run"`).
program = DotProgram(namespace=ns, version=__version__, name="dot-tasks", binary="dot-tasks", binary_names=["dot-tasks"])
