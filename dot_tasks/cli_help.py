"""dot-tasks' own help: its commands and options, never Invoke's core options, which mean nothing here."""

from __future__ import annotations

import textwrap

from invoke import Collection

from .cli_grammar import METAVARS, SHORT_FLAGS, grammars
from .tasks import ns

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
    """`dot-tasks --help`: the commands under headings, the program's options, examples."""
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
    """`dot-tasks <name> --help`: usage, what the bare words mean, every option with its help, an example."""
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
        parameter = (argument.name or flag.removeprefix("--")).replace("-", "_")
        words = argument.help or ""
        if grammar.switch(flag):
            inverse = next((k for k, v in grammar.inverse.items() if v == flag), None)
            shown = f"{flag} / {inverse}" if inverse else flag
        else:
            shown = f"{flag} {'N' if flag in grammar.integers else METAVARS.get(parameter.strip('_'), 'VALUE')}"
            shown = next((f"{short}, {shown}" for short, long in SHORT_FLAGS.items() if long == flag), shown)
        rows.append((shown, words))
    rows.append(("-h, --help", "Show this help."))
    parts += ["", "Options:", _columns(rows), "", "Example:", f"  {EXAMPLES.get(name, f'dot-tasks {name}')}"]
    return "\n".join(parts)
