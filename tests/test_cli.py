"""The command line as a new user meets it: argument forms, help, parse errors, pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Project, dot, git

from dot_tasks.cli_grammar import canonical_argv, grammars
from dot_tasks.cli_help import command_help, program_help

#: Invoke's core options: none of them means anything to a dot-tasks user.
INVOKE_CORE = (
    "--prompt-for-sudo-password",
    "--pty",
    "--echo",
    "--core-opts",
    "--collection",
    "--search-root",
    "--warn-only",
    "--hide",
    "--dry",
    "--complete",
    "--write-pyc",
    "--command-timeout",
    "--config",
    "--debug",
    "Subcommands",
    "Docstring",
)


def words(line: str) -> list[str]:
    return canonical_argv(["dot-tasks", *line.split()])[1:]


@pytest.mark.parametrize(
    "line, expected",
    [
        # A spec, a bare ref, flags before or after: the same build.
        ("run HEAD", "run --ref HEAD"),
        ("run dev@main --json", "run --json --spec dev@main"),
        ("run --project-dir P prod@HEAD", "run --project-dir P --spec prod@HEAD"),
        ("run --ref HEAD~1 --context prod", "run --ref HEAD~1 --context prod"),
        ("run --context prod @HEAD", "run --context prod --ref HEAD"),
        ("run main@{1}", "run --ref main@{1}"),  # a reflog ref is not CTX@REF
        ("build dev@main -- --select a+ b", "build --context dev --ref main -- --select a+ b"),
        ("build HEAD --command=test", "build --command test --ref HEAD"),
        ("profile @v1", "profile --ref v1"),
        ("worktree HEAD~1", "worktree --ref HEAD~1"),
        ("resolve main --short", "resolve --short --ref main"),
        ("promote prod@v1 --json", "promote --json --spec prod@v1"),
        ("rollback prod --to v1", "rollback --to v1 --context prod"),
        ("live prod", "live --context prod"),
        ("live --json", "live --json"),
        ("diff main HEAD -o d.html", "diff --output d.html --base main --head HEAD"),
        ("diff --select a+ prod@main --json HEAD", "diff --select a+ --json --base prod@main --head HEAD"),
        ("diff --sample -1", "diff --sample -1"),  # a negative number is a value; diff refuses it itself
        ("clean dev@abc --dry-run", "clean --dry-run --context dev --ref abc"),
        ("clean --keep 3", "clean --keep 3"),
        ("list --no-such-thing=1 --json", None),
        ("run --ref diff dev@x", None),  # two refs
        ("run --context live x", "run --context live --ref x"),
        ("--version", "--version"),
        ("run --help --ref x", "--help run"),
        ("help diff", "--help diff"),
        ("-h", "--help"),
        ("run -- --help", "run -- --help"),  # after --, words are dbt's
    ],
)
def test_argument_forms(line: str, expected: str | None) -> None:
    from dot_tasks.cli_grammar import UsageError

    if expected is None:
        with pytest.raises(UsageError):
            words(line)
    else:
        assert words(line) == expected.split()


@pytest.mark.parametrize(
    "line, needles",
    [
        ("run --ref HEAD~1 dev@HEAD", ["two refs", "--ref HEAD~1", "dev@HEAD"]),
        ("run --context a b@HEAD", ["two contexts"]),
        ("run --spec dev@x HEAD", ["--spec dev@x", "HEAD"]),
        ("diff a b c", ["one too many", "'c'"]),
        ("diff --base a b c", ["--base twice"]),
        ("diff main HEAD -o", ["-o needs a value", "--output FILE"]),
        ("clean --keep", ["--keep needs a value", "--keep 3"]),
        ("clean --keep many", ["--keep takes a whole number", "'many'"]),
        ("run --ref a --ref b", ["--ref was given twice"]),
        ("run --json=yes", ["--json is a switch"]),
        ("run --selec x", ["run has no option --selec", "did you mean --select"]),
        ("list extra", ["list takes no bare words", "extra"]),
        ("worktree dev@main", ["takes a ref, not a context", "dot-tasks worktree main"]),
        ("buidl", ["unknown command 'buidl'", "did you mean build"]),
        ("help buidl", ["no command named 'buidl'"]),
        ("--echo run", ["unknown option --echo"]),
        ("--ref x run", ["--ref", "belongs after the command"]),
        ("-- x", ["'--' passes flags to dbt"]),
        ("run dev@", ["CTX@REF"]),
    ],
)
def test_refusals_are_one_line_in_dot_tasks_words(tmp_path, line: str, needles: list[str]) -> None:
    result = dot(*line.split(), cwd=tmp_path)
    assert result.code == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dot-tasks: "), result.stderr
    assert "Flag <Argument" not in lines[0] and "No idea what" not in lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert result.stdout == ""


def test_what_invoke_still_refuses_is_said_in_our_words(monkeypatch, capsys) -> None:
    """The boundary's last line of defence: a parse error canonical_argv let through."""
    from dot_tasks import main

    monkeypatch.setattr(main, "canonical_argv", lambda argv, collection=None: argv)
    with pytest.raises(SystemExit) as exit_:
        main.program.run(["dot-tasks", "diff", "--output"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("dot-tasks: ") and len(err.splitlines()) == 1, err


def test_help_is_dot_tasks_own(tmp_path) -> None:
    known = grammars()
    pages = {"": dot("--help", cwd=tmp_path)}
    pages.update({name: dot(name, "--help", cwd=tmp_path) for name in known})
    for name, result in pages.items():
        assert result.code == 0 and result.stderr == "", (name, result)
        for option in INVOKE_CORE:
            assert not re.search(rf"{re.escape(option)}(?![\w-])", result.stdout), (name, option)
    for name in known:
        page = pages[name].stdout
        assert page.startswith(f"usage: dot-tasks {name}") and "\nExample:\n  dot-tasks " in page, page
        for flag, argument in known[name].flags.items():  # every option, each with its own words
            assert flag in page and argument.help, (name, flag)
    assert "--keep N " in pages["clean"].stdout and "--sample N " in pages["diff"].stdout
    assert "STRING" not in "".join(p.stdout for p in pages.values())
    assert "to build" not in pages["promote"].stdout  # promote builds nothing
    assert all(f"  {name} " in pages[""].stdout for name in known)
    assert dot("help", "run", cwd=tmp_path).stdout == pages["run"].stdout
    assert dot(cwd=tmp_path).stdout == pages[""].stdout == program_help() + "\n"
    assert command_help("run") + "\n" == pages["run"].stdout


def test_every_task_is_made_by_dot_task_and_shares_the_shared_help() -> None:
    from invoke import Context, Exit

    from dot_tasks.commands.common import dot_task
    from dot_tasks.commands.params import H_PROFILES, H_PROJECT
    from dot_tasks.errors import DotError
    from dot_tasks.tasks import ns

    known = grammars()
    for name in known:
        assert ns[name].auto_shortflags is False and hasattr(ns[name].body, "__wrapped__"), name  # reports_errors applied
    for flag, text in (("--project-dir", H_PROJECT), ("--profiles-dir", H_PROFILES)):
        owners = [name for name in known if flag in known[name].flags]
        assert owners and all(known[name].flags[flag].help == text for name in owners), flag

    def fails(c: Context, ref: str = "HEAD", json_: bool = False, project_dir: str | None = None) -> None:
        raise DotError("bad input: do this instead")

    made = dot_task(help={"ref": "Its own words."})(fails)
    # The shared help of the flags it has (json for json_), its own where it gives one, nothing else.
    assert made.help == {"ref": "Its own words.", "json": "Print the result as one JSON object on stdout.", "project_dir": H_PROJECT}
    with pytest.raises(Exit) as exited:
        made(Context())
    assert exited.value.code == 2 and exited.value.message == "dot-tasks: bad input: do this instead"


def test_list_names_every_command(tmp_path) -> None:
    result = dot("--list", cwd=tmp_path)
    assert result.code == 0 and "Subcommands" not in result.stdout
    assert [line.split()[0] for line in result.stdout.splitlines()] == list(grammars())


@pytest.mark.parametrize("args", [["list", "--json"], ["--help"]])
def test_a_closed_pipe_exits_quietly(project: Project, args: list[str]) -> None:
    if args[0] == "list":
        for ref in (project.first, project.second):
            assert project.run("worktree", ref).code == 0
    # The reader is gone before dot-tasks writes a byte: every write meets EPIPE.
    reader, writer = os.pipe()
    os.close(reader)
    proc = subprocess.run(
        [sys.executable, "-m", "dot_tasks", *args], cwd=project.project_dir, stdout=writer, stderr=subprocess.PIPE, text=True
    )
    os.close(writer)
    assert proc.stderr == "" and proc.returncode == 141, proc.stderr


def test_the_argument_forms_reach_the_command(project: Project) -> None:
    """End to end, through the real program: a bare ref, a spec, flags on either side."""
    root = project.repo_dir.parent
    result = dot("resolve", "--project-dir", str(project.project_dir), "HEAD~1", cwd=root)
    assert result.code == 0 and result.out == project.first, result.stderr
    result = dot("profile", "prod@HEAD~1", "--project-dir", str(project.project_dir), cwd=root)
    assert result.code == 0, result.stderr
    assert result.out == str(project.build_dir(project.first) / "prod")
    assert git("branch", "--list", cwd=project.repo_dir) == "* main"


def test_a_pipe_closed_before_the_exit_flush_is_quiet_too(monkeypatch) -> None:
    """Invoke exits (sys.exit) from inside run(): what is still buffered meets the closed pipe there."""
    import io

    from dot_tasks import main

    class ClosedPipe(io.StringIO):
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    quieted = []
    monkeypatch.setattr(main, "_quiet_broken_pipe", lambda: quieted.append(True))
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    with pytest.raises(SystemExit) as exit_:
        main.program.run(["dot-tasks", "ci-recipe", "nosuch"])
    assert exit_.value.code == 2 and quieted == [True]


def test_ci_recipe_prints_the_recipe_of_this_checkout(tmp_path) -> None:
    root = Path(__file__).resolve().parent.parent
    assert dot("ci-recipe", "github", cwd=tmp_path).stdout == (root / "examples/ci/github-actions.yml").read_text()
    assert dot("ci-recipe", "--name", "shell", cwd=tmp_path).stdout == (root / "examples/ci/slim-ci.sh").read_text()
    listed = dot("ci-recipe", cwd=tmp_path)
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["github", "shell"]
    wrong = dot("ci-recipe", "gitlab", cwd=tmp_path)
    assert wrong.code == 2 and wrong.stderr.startswith("dot-tasks: no CI recipe named 'gitlab'"), wrong.stderr


def test_an_installation_without_its_recipes_says_so(monkeypatch, tmp_path) -> None:
    from dot_tasks import recipes
    from dot_tasks.errors import DotError

    monkeypatch.setattr(recipes, "__file__", str(tmp_path / "dot_tasks" / "recipes.py"))
    with pytest.raises(DotError, match="missing from this installation of dot-tasks: reinstall it"):
        recipes.recipe_text("github")
