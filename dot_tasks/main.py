"""The `dot-tasks` console script: an Invoke Program over the same tasks as `inv`."""

from __future__ import annotations

from pathlib import Path

from invoke import Exit, Program
from invoke.config import AmbiguousMergeError

from . import __version__
from .tasks import ns

_CONFIG_NAMES = ("invoke.yaml", "invoke.yml", "invoke.json")


def find_project_config(start: Path) -> Path | None:
    """The nearest directory upward of `start` holding an invoke.yaml, up to the git root."""
    for directory in (start, *start.parents):
        if any((directory / name).is_file() for name in _CONFIG_NAMES):
            return directory
        if (directory / ".git").exists():
            return None
    return None


class DotProgram(Program):
    """Loads the project's invoke.yaml, which a Program with a bundled namespace skips."""

    def parse_collection(self) -> None:
        super().parse_collection()
        location = find_project_config(Path.cwd())
        if location is not None:
            self.config.set_project_location(str(location))
            try:
                self.config.load_project()
            except (ValueError, OSError) as exc:  # unreadable YAML: say which file, not a traceback
                raise Exit(f"dot-tasks: {location}/invoke.yaml cannot be used: {exc}", code=2) from None

    def execute(self) -> None:
        # Invoke merges invoke.yaml into the tasks' defaults only now, and a
        # value of the wrong shape (a list where a mapping belongs) fails here.
        try:
            super().execute()
        except AmbiguousMergeError as exc:
            raise Exit(f"dot-tasks: invoke.yaml cannot be used: {exc}", code=2) from None

    def normalize_argv(self, argv: list[str] | str | None) -> None:
        super().normalize_argv(argv)
        self.argv = accept_diff_sides(accept_positional_spec(self.argv))


# Tasks whose first bare word is a CTX@REF spec, and tasks whose first bare word is a context.
_SPEC_TASKS = ("run", "promote")
_CONTEXT_TASKS = ("rollback", "live", "retire")


def accept_positional_spec(argv: list[str]) -> list[str]:
    """Let `dot-tasks run dev@main` stand for `dot-tasks run --spec dev@main`.

    Invoke has no optional positional arguments, so the ADR's shorthand is
    rewritten into its flag before parsing: only a bare word with an `@`,
    right after `run` or `promote`; and a bare word right after `rollback`
    or `live` is the context (`dot-tasks rollback prod`).
    """
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == "--":
            break
        following = out[i + 1]
        if following.startswith("-"):
            continue
        if token in _SPEC_TASKS and "@" in following:
            out[i + 1:i + 2] = ["--spec", following]
            break
        if token in _CONTEXT_TASKS and "@" not in following and (i == 0 or not out[i - 1].startswith("-")):
            out[i + 1:i + 2] = ["--context", following]
            break
    return out


program = DotProgram(namespace=ns, version=__version__, name="dot-tasks", binary="dot-tasks",
                     binary_names=["dot-tasks"])


#: diff's flags that take no value; every other flag consumes the next word.
_DIFF_SWITCHES = frozenset({"--json", "--no-build", "--build", "--exit-zero", "--help", "-h"})


def accept_diff_sides(argv: list[str]) -> list[str]:
    """Let `dot-tasks diff BASE HEAD` stand for `dot-tasks diff --base BASE --head HEAD`.

    Up to two bare words after `diff` become its sides, in order; a word that
    follows a flag taking a value is that flag's value. `-o` is `--output`.
    """
    # Only the task name counts, the first bare word after the program's own (when argv has it):
    # a ref or a value that happens to be "diff" (`run --ref diff`) does not.
    bare = [i for i, word in enumerate(argv) if not word.startswith("-")][:2]
    task_at = next((i for i in bare if argv[i] == "diff"), None)
    if task_at is None:
        return list(argv)
    start = task_at + 1
    out = list(argv[:start])
    sides = ["--base", "--head"]
    words = argv[start:]
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            out += words[i:]
            break
        if word == "-o":
            word = "--output"
        if word.startswith("-"):
            out.append(word)
            if "=" not in word and word not in _DIFF_SWITCHES and i + 1 < len(words):
                out.append(words[i + 1])
                i += 1
        elif sides:
            out += [sides.pop(0), word]
        else:
            out.append(word)
        i += 1
    return out
