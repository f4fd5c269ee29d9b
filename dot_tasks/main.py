"""The `dot-tasks` console script: an Invoke Program over the same tasks as `inv`.

Invoke parses what this module hands it; before that, `canonical_argv`
reads the command line the way `git` and `dbt` users write it (a spec or a
bare ref where a spec is taken, flags in any order) and refuses, in one line,
anything it cannot read. Help is dot-tasks' own: its commands and options,
never Invoke's core options, which mean nothing here.
"""

from __future__ import annotations

import difflib
import inspect
import os
import re
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from invoke import Collection, Exit, Program
from invoke.config import AmbiguousMergeError
from invoke.exceptions import ParseError
from invoke.parser import Argument

from . import __version__
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


class UsageError(DotError):
    """A command line dot-tasks cannot read."""


# --- the grammar of each command ----------------------------------------------------

#: Commands whose bare words are not a spec: what each bare word fills, in order.
_POSITIONAL = {"diff": ("base", "head"), "rollback": ("context",), "live": ("context",), "retire": ("context",), "ci-recipe": ("name",)}
#: Short flags, and the long flag each stands for when the command has it.
_SHORT = {"-o": "--output"}
_HELP_FLAGS = ("-h", "--help")
#: The options Invoke's parser keeps before the command (Invoke's core options are not ours).
_GLOBAL_SWITCHES = {"-V": "--version", "--version": "--version", "-l": "--list", "--list": "--list"}

#: How each option's value is shown in help, by parameter name.
_METAVARS = {
    "ref": "REF",
    "to": "REF",
    "context": "CTX",
    "spec": "CTX@REF",
    "defer_to": "CTX@REF",
    "base": "SIDE",
    "head": "SIDE",
    "project_dir": "DIR",
    "profiles_dir": "DIR",
    "command": "CMD",
    "select": "SELECTOR",
    "exclude": "SELECTOR",
    "key": "MODEL=COL",
    "output": "FILE",
    "format": "FORMAT",
    "older_than": "AGE",
    "name": "NAME",
}

#: One example per command, as `git help` and `dbt --help` give them.
EXAMPLES = {
    "resolve": "dot-tasks resolve main --short",
    "worktree": "dot-tasks worktree HEAD~1",
    "profile": "dot-tasks profile dev@main",
    "build": "dot-tasks build dev@main --command test -- --select orders+",
    "run": "dot-tasks run dev@main",
    "list": "dot-tasks list --json",
    "clean": "dot-tasks clean --keep 3 --dry-run",
    "diff": "dot-tasks diff prod@main dev@HEAD --format markdown -o diff.md",
    "promote": "dot-tasks promote prod@v1.4.0",
    "rollback": "dot-tasks rollback prod",
    "live": "dot-tasks live prod",
    "retire": "dot-tasks retire prod",
    "ci-recipe": "dot-tasks ci-recipe github > .github/workflows/dbt.yml",
}

#: What a bare word means, for the usage line and the help's list of arguments.
_POSITIONAL_HELP = {
    "spec": (
        "[CTX@REF | @REF | REF]",
        "What to act on: a context and a git ref (dev@main), a ref in the default context (@main), or just the ref (main).",
    ),
    "ref": ("[REF]", "The git ref: branch, tag, HEAD~2, short or full hash."),
    "base": ("[BASE [HEAD]]", "The two sides, each CTX@REF, @REF or REF (same as --base and --head)."),
    "context": ("[CTX]", "The context (same as --context)."),
    "name": ("[NAME]", "Which recipe, github or shell (same as --name); without one, the list of recipes."),
}


@dataclass
class Grammar:
    """What one command's command line may hold, read from its Invoke task."""

    name: str
    summary: str
    doc: str
    #: Long flag ("--ref", "--no-deps") → the parameter it sets.
    flags: dict[str, Argument] = field(default_factory=dict)
    #: "--no-deps" → "--deps".
    inverse: dict[str, str] = field(default_factory=dict)
    integers: set[str] = field(default_factory=set)
    #: What bare words fill, in order: "spec" (CTX@REF or REF) or a parameter name.
    positional: tuple[str, ...] = ()

    def switch(self, flag: str) -> bool:
        return flag in self.inverse or self.flags[flag].kind is bool

    def repeatable(self, flag: str) -> bool:
        return flag in self.flags and self.flags[flag].kind is list


_INTEGER_ANNOTATION = re.compile(r"int(\|None)?|(typing\.)?Optional\[int\]|<class'int'>")


def _flag(name: str) -> str:
    return "--" + name.strip("_").replace("_", "-")


_GRAMMARS: dict[int, dict[str, Grammar]] = {}


def grammars(collection: Collection = ns) -> dict[str, Grammar]:
    """Every command's grammar, in the collection's order (read once: Invoke's parse consumes the help)."""
    if id(collection) not in _GRAMMARS:
        _GRAMMARS[id(collection)] = _read_grammars(collection)
    return _GRAMMARS[id(collection)]


def _read_grammars(collection: Collection) -> dict[str, Grammar]:
    found = {}
    # Invoke's Task.get_arguments pops each task's help as it reads it: keep it for the next reader.
    helps = {name: dict(collection[name].help) for name in collection.task_names}
    try:
        contexts = collection.to_contexts(ignore_unknown_help=True)
    finally:
        for name, kept in helps.items():
            collection[name].help = kept
    for context in contexts:
        task = collection[context.name]
        # Annotations stay text (no eval): a name imported only for type checking cannot break the parse.
        parameters = inspect.signature(task.body).parameters
        integers = {
            _flag(name)
            for name, p in parameters.items()
            if _INTEGER_ANNOTATION.fullmatch(str(p.annotation).replace(" ", "")) or type(p.default) is int
        }
        flags = {flag: context.flags[flag] for flag in context.flags}
        doc = inspect.getdoc(task.body) or ""
        if context.name in _POSITIONAL:
            positional = _POSITIONAL[context.name]
        elif "--spec" in flags or "--ref" in flags:
            positional = ("spec",) if "--context" in flags or "--spec" in flags else ("ref",)
        else:
            positional = ()
        found[context.name] = Grammar(context.name, doc.split("\n")[0], doc, flags, dict(context.inverse_flags), integers, positional)
    return found


# --- reading a command line --------------------------------------------------------


def _is_spec(word: str) -> bool:
    """CTX@REF or @REF, but not a reflog ref such as `main@{1}` or `@{-1}`."""
    before, at, after = word.partition("@")
    return bool(at) and not after.startswith("{")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def canonical_argv(argv: list[str], collection: Collection = ns) -> list[str]:
    """`argv` as Invoke's parser reads it: bare words become the flags they stand for.

    `dot-tasks run HEAD --json` → `dot-tasks run --ref HEAD --json`, `dot-tasks
    diff main HEAD` → `... --base main --head HEAD`. Help in any position asks
    for dot-tasks' help. Raises `UsageError`, naming what was wrong, for
    anything else: an unknown command or option, a missing value, a word
    where none belongs, two refs or contexts for one command.
    """
    program, words = argv[0], list(argv[1:])
    known = grammars(collection)
    out = [program]
    i = 0
    while i < len(words) and words[i].startswith("-") and words[i] != "--":
        word = words[i]
        if word in _HELP_FLAGS:
            following = words[i + 1] if i + 1 < len(words) else None
            return [program, "--help", following] if following in known else [program, "--help"]
        if word not in _GLOBAL_SWITCHES:
            owners = [g.name for g in known.values() if word.split("=")[0] in g.flags]
            where = f": it belongs after the command, e.g. dot-tasks {owners[0]} {word}" if owners else ""
            raise UsageError(f"unknown option {word}{where} (dot-tasks --help lists the commands)")
        out.append(_GLOBAL_SWITCHES[word])
        i += 1
    if i >= len(words):
        return out
    command = words[i]
    if command == "help":
        topic = words[i + 1] if i + 1 < len(words) else None
        if topic is not None and topic not in known:
            raise UsageError(f"no command named {topic!r}{_suggest(topic, list(known))}: dot-tasks --help lists them")
        return [program, "--help", topic] if topic else [program, "--help"]
    if command not in known:
        if command == "--":
            raise UsageError("'--' passes flags to dbt, after a command: e.g. dot-tasks run -- --fail-fast")
        raise UsageError(f"unknown command {command!r}{_suggest(command, list(known))}: dot-tasks --help lists the commands")
    grammar = known[command]
    rest = words[i + 1 :]
    ours = rest[: rest.index("--")] if "--" in rest else rest  # after `--`, words are dbt's
    if any(word in _HELP_FLAGS for word in ours):
        return [program, "--help", command]
    return out + [command, *_command_words(grammar, rest)]


def _command_words(grammar: Grammar, words: list[str]) -> list[str]:
    name = grammar.name
    hint = f"(dot-tasks {name} --help)"
    out: list[str] = []
    given: dict[str, str] = {}
    bare: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word == "--":
            break
        if word.startswith("-") and len(word) > 1:
            flag, eq, value = word.partition("=")
            flag = _SHORT.get(flag, flag) if _SHORT.get(flag) in grammar.flags else flag
            if flag not in grammar.flags and flag not in grammar.inverse:
                choices = [*grammar.flags, *grammar.inverse]
                raise UsageError(f"{name} has no option {word.split('=')[0]}{_suggest(flag, choices)} {hint}")
            if grammar.switch(flag):
                if eq:
                    raise UsageError(f"{flag} is a switch and takes no value (got {word!r}) {hint}")
                out.append(flag)
                i += 1
                continue
            if not eq:
                following = words[i + 1] if i + 1 < len(words) else None
                if (
                    following is None
                    or following == "--"
                    or following.split("=")[0] in grammar.flags
                    or following in grammar.inverse
                    or following in _HELP_FLAGS
                ):
                    example = f"{flag} 3" if flag in grammar.integers else f"{flag} {_METAVARS.get(flag[2:].replace('-', '_'), 'VALUE')}"
                    raise UsageError(f"{word} needs a value, e.g. {example} {hint}")
                value = following
                i += 1
            if flag in grammar.integers and not _is_integer(value):
                raise UsageError(f"{flag} takes a whole number, got {value!r} {hint}")
            if flag in given and not grammar.repeatable(flag):
                raise UsageError(f"{flag} was given twice ({given[flag]} and {value}): give it once {hint}")
            given[flag] = value
            out += [flag, value]
            i += 1
            continue
        bare.append(word)
        i += 1
    out += _bare_words(grammar, bare, given, hint)
    return out + words[i:]


def _is_integer(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def _bare_words(grammar: Grammar, bare: list[str], given: dict[str, str], hint: str) -> list[str]:
    """The flags that `grammar`'s bare words stand for."""
    roles = grammar.positional
    if len(bare) > len(roles):
        extra = bare[len(roles) :]
        if not roles:
            raise UsageError(f"{grammar.name} takes no bare words (got {' '.join(extra)}) {hint}")
        raise UsageError(
            f"{grammar.name} takes at most {len(roles)} bare word(s); {' '.join(repr(w) for w in extra)} is one too many {hint}"
        )
    out: list[str] = []
    for role, word in zip(roles, bare, strict=False):
        if role in ("spec", "ref"):
            out += _spec_words(grammar, word, given, hint)
            continue
        flag = _flag(role)
        if flag in given:
            raise UsageError(f"{grammar.name} was given {flag} twice: {given[flag]} and {word}; give one {hint}")
        out += [flag, word]
    return out


def _spec_words(grammar: Grammar, word: str, given: dict[str, str], hint: str) -> list[str]:
    """`dev@main` or `main` where a command takes a spec, as the flags it stands for."""
    from .naming import parse_spec

    context, ref = parse_spec(word) if _is_spec(word) else (None, word)
    for flag, part in (("--context", context), ("--ref", ref)):
        if part is not None and flag in given:
            raise UsageError(f"{grammar.name} was given two {flag[2:]}s, {flag} {given[flag]} and {word}: give one {hint}")
    if "--spec" in given:
        raise UsageError(f"{grammar.name} was given --spec {given['--spec']} and {word}: give one {hint}")
    if "--spec" in grammar.flags and (context is not None or "--ref" not in grammar.flags):
        return ["--spec", word]
    if context is not None and "--context" not in grammar.flags:
        raise UsageError(f"{grammar.name} takes a ref, not a context: give {ref!r} alone, e.g. dot-tasks {grammar.name} {ref}")
    return (["--context", context] if context else []) + ["--ref", ref]


# --- help ----------------------------------------------------------------------------

#: The commands in the order a user meets them, under headings.
_SECTIONS = (
    ("Build a commit", ("run", "resolve", "worktree", "profile", "build")),
    ("Look after builds", ("list", "clean")),
    ("Compare and deploy", ("diff", "promote", "rollback", "live", "retire")),
    ("Set up CI", ("ci-recipe",)),
)


def _columns(rows: list[tuple[str, str]], indent: int = 2) -> str:
    width = min(max((len(left) for left, _ in rows), default=0) + 2, 30)
    lines = []
    for left, right in rows:
        wrapped = textwrap.wrap(right, width=max(40, 100 - indent - width)) or [""]
        if len(left) + 2 > width:
            lines.append(" " * indent + left)
            lines += [" " * (indent + width) + line for line in wrapped]
        else:
            lines.append(" " * indent + left.ljust(width) + wrapped[0])
            lines += [" " * (indent + width) + line for line in wrapped[1:]]
    return "\n".join(lines)


def program_help(collection: Collection = ns) -> str:
    known = grammars(collection)
    listed = [name for _, names in _SECTIONS for name in names]
    sections = [(title, [n for n in names if n in known]) for title, names in _SECTIONS]
    sections.append(("Other commands", [n for n in known if n not in listed]))
    parts = [
        "usage: dot-tasks <command> [CTX@REF | REF] [options] [-- dbt flags]",
        "",
        "Isolated, reproducible dbt builds for any git commit, each in its own schema.",
    ]
    for title, names in sections:
        if names:
            parts += ["", f"{title}:", _columns([(n, known[n].summary) for n in names])]
    parts += [
        "",
        "Options:",
        _columns(
            [
                ("-h, --help", "Show this help; dot-tasks <command> --help shows a command's."),
                ("-V, --version", "Print dot-tasks' version."),
                ("-l, --list", "List the commands, one a line."),
            ]
        ),
        "",
        "Examples:",
        _columns(
            [
                ("dot-tasks run dev@main", "Build main in the dev context, into dev_<short hash>."),
                ("dot-tasks diff prod@main dev@HEAD", "What your change does to the data, model by model."),
                ("dot-tasks help run", "Everything `run` takes."),
            ]
        ),
    ]
    return "\n".join(parts)


def command_help(name: str, collection: Collection = ns) -> str:
    grammar = grammars(collection)[name]
    roles = grammar.positional
    usage = f"usage: dot-tasks {name}"
    if roles:
        usage += " " + _POSITIONAL_HELP.get(roles[0], (f"[{roles[0].upper()}]", ""))[0]
    usage += " [options]"
    if name in ("build", "run"):
        usage += " [-- dbt flags]"
    parts = [usage, "", grammar.doc]
    if roles:
        left, right = _POSITIONAL_HELP.get(roles[0], (roles[0].upper(), ""))
        parts += ["", "Arguments:", _columns([(left.removeprefix("[").removesuffix("]"), right)])]
    rows = []
    for flag, argument in grammar.flags.items():
        parameter = argument.name.replace("-", "_")
        words = argument.help or ""
        if grammar.switch(flag):
            inverse = next((k for k, v in grammar.inverse.items() if v == flag), None)
            shown = f"{flag} / {inverse}" if inverse else flag
        else:
            shown = f"{flag} {'N' if flag in grammar.integers else _METAVARS.get(parameter.strip('_'), 'VALUE')}"
            shown = next((f"{short}, {shown}" for short, long in _SHORT.items() if long == flag), shown)
        rows.append((shown, words))
    rows.append(("-h, --help", "Show this help."))
    parts += ["", "Options:", _columns(rows), "", "Example:", f"  {EXAMPLES.get(name, f'dot-tasks {name}')}"]
    return "\n".join(parts)


# --- the program ---------------------------------------------------------------------


def _quiet_broken_pipe() -> None:
    """The reader went away (`| head -1`): stop writing, and say nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # pragma: no cover - stdout already gone
        pass


class DotProgram(Program):
    """Loads the project's invoke.yaml (which a Program with a bundled namespace skips) and speaks for itself."""

    def run(self, argv: list[str] | str | None = None, exit: bool = True) -> None:
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
        super().parse_collection()
        location = find_project_config(Path.cwd())
        if location is not None:
            self.config.set_project_location(str(location))
            try:
                self.config.load_project()
            except (ValueError, OSError) as exc:  # unreadable YAML: say which file, not a traceback
                raise Exit(f"dot-tasks: {location}/invoke.yaml cannot be used: {exc}", code=2) from None

    def parse_tasks(self) -> None:
        # canonical_argv has refused what it cannot read; anything Invoke still
        # refuses is said in dot-tasks' voice, not Invoke's.
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise Exit(f"dot-tasks: {exc} (dot-tasks --help)", code=USAGE_ERROR) from None

    def execute(self) -> None:
        # Invoke merges invoke.yaml into the tasks' defaults only now, and a
        # value of the wrong shape (a list where a mapping belongs) fails here.
        try:
            super().execute()
        except AmbiguousMergeError as exc:
            raise Exit(f"dot-tasks: invoke.yaml cannot be used: {exc}", code=2) from None

    def normalize_argv(self, argv: list[str] | str | None) -> None:
        super().normalize_argv(argv)
        try:
            self.argv = canonical_argv(list(self.argv), self.namespace or ns)
        except DotError as exc:
            raise Exit(f"dot-tasks: {exc}", code=USAGE_ERROR) from None

    def print_help(self) -> None:
        print(program_help(self.namespace or ns))

    def print_task_help(self, name: str) -> None:
        print(command_help(name, self.namespace or ns))

    def list_tasks(self) -> None:
        known = grammars(self.namespace or ns)
        width = max(len(name) for name in known) + 2
        print("\n".join(f"{name:<{width}}{grammar.summary}" for name, grammar in known.items()))


program = DotProgram(namespace=ns, version=__version__, name="dot-tasks", binary="dot-tasks", binary_names=["dot-tasks"])


# --- the shorthands before canonical_argv ---------------------------------------------
# test_deploy.py and test_diff.py still call these two by name; the program no
# longer does (canonical_argv reads every command's bare words). Drop them once
# those tests call canonical_argv.

_SPEC_TASKS = ("run", "promote")
_CONTEXT_TASKS = ("rollback", "live", "retire")


def accept_positional_spec(argv: list[str]) -> list[str]:
    """The old rewrite: a bare CTX@REF after run/promote, a bare context after rollback/live."""
    out = list(argv)
    for i, token in enumerate(out[:-1]):
        if token == "--":
            break
        following = out[i + 1]
        if following.startswith("-"):
            continue
        if token in _SPEC_TASKS and "@" in following:
            out[i + 1 : i + 2] = ["--spec", following]
            break
        if token in _CONTEXT_TASKS and "@" not in following and (i == 0 or not out[i - 1].startswith("-")):
            out[i + 1 : i + 2] = ["--context", following]
            break
    return out


_DIFF_SWITCHES = frozenset({"--json", "--no-build", "--build", "--exit-zero", "--help", "-h"})


def accept_diff_sides(argv: list[str]) -> list[str]:
    """The old rewrite of diff's two bare sides into --base and --head."""
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
