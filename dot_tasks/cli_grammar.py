"""Reading a `dot-tasks` command line: each command's grammar, and `canonical_argv`.

Invoke parses what `canonical_argv` hands it. Before that, the command line is
read the way `git` and `dbt` users write it (a spec or a bare ref where a spec
is taken, flags in any order), and anything it cannot read is refused in one
line, as a `UsageError`. Each command's grammar is read from its Invoke task,
so a new flag needs no change here.
"""

from __future__ import annotations

import difflib
import inspect
import re
from dataclasses import dataclass, field

from invoke import Collection
from invoke.parser import Argument

from .errors import DotError
from .tasks import ns


class UsageError(DotError):
    """A command line dot-tasks cannot read."""


# --- the grammar of each command ----------------------------------------------------

#: Commands whose bare words are not a spec: what each bare word fills, in order.
_POSITIONAL = {"diff": ("base", "head"), "rollback": ("context",), "live": ("context",), "retire": ("context",), "ci-recipe": ("name",)}
#: Short flags, and the long flag each stands for when the command has it.
SHORT_FLAGS = {"-o": "--output"}
_HELP_FLAGS = ("-h", "--help")
#: The options Invoke's parser keeps before the command (Invoke's core options are not ours).
_GLOBAL_SWITCHES = {"-V": "--version", "--version": "--version", "-l": "--list", "--list": "--list"}

#: How each option's value is shown in help, by parameter name.
METAVARS = {
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
        """Whether `flag` is a switch (`--json`, `--no-deps`), which takes no value."""
        return flag in self.inverse or self.flags[flag].kind is bool

    def repeatable(self, flag: str) -> bool:
        """Whether `flag` may be given more than once (`diff --key`)."""
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
        assert context.name is not None  # Collection.to_contexts names each context after its task
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
            flag = SHORT_FLAGS.get(flag, flag) if SHORT_FLAGS.get(flag) in grammar.flags else flag
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
                    example = f"{flag} 3" if flag in grammar.integers else f"{flag} {METAVARS.get(flag[2:].replace('-', '_'), 'VALUE')}"
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
