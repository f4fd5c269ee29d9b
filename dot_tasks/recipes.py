"""The CI recipes shipped with dot-tasks (examples/ci in a checkout, dot_tasks/ci in a wheel)."""

from __future__ import annotations

from pathlib import Path

from .errors import DotError

#: Recipe name → (file, what it is).
RECIPES = {
    "github": (
        "github-actions.yml",
        "GitHub Actions workflow: slim CI on pull requests, build and promote on main "
        "(save as .github/workflows/dbt.yml, beside the shell recipe as ci/slim-ci.sh)",
    ),
    "shell": ("slim-ci.sh", "the same steps as a POSIX shell script, for any CI: sh slim-ci.sh pr | main"),
}


def recipe_dir() -> Path:
    """`dot_tasks/ci` in a wheel; the top-level `examples/ci/` in a checkout."""
    here = Path(__file__).resolve().parent
    first = next(iter(RECIPES.values()))[0]
    for candidate in (here / "ci", here.parent / "examples" / "ci"):
        if (candidate / first).is_file():
            return candidate
    raise DotError(f"the CI recipes ({first}, ...) are missing from this installation of dot-tasks: reinstall it")


def recipe_text(name: str) -> str:
    """The text of the CI recipe called `name`, as the package ships it."""
    if name not in RECIPES:
        raise DotError(f"no CI recipe named {name!r}: the recipes are {', '.join(RECIPES)} (dot-tasks ci-recipe lists them)")
    return (recipe_dir() / RECIPES[name][0]).read_text(encoding="utf-8")
