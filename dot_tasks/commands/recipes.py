"""`ci-recipe`: print a CI recipe that ships inside the package, to save into a project."""

from __future__ import annotations

import sys

from invoke import Context

from .common import dot_task


@dot_task(
    name="ci-recipe",
    help={
        "name": "Which recipe: github (a GitHub Actions workflow) or shell (the same steps for any CI); without one, list them.",
    },
)
def ci_recipe(c: Context, name: str | None = None) -> None:
    """Print a CI recipe shipped with dot-tasks (slim CI on pull requests, promote on main)."""
    from .. import recipes

    if name is None:
        width = max(len(n) for n in recipes.RECIPES) + 2
        for recipe, (_file, what) in recipes.RECIPES.items():
            print(f"{recipe:<{width}}{what}")
        return
    sys.stdout.write(recipes.recipe_text(name))
    sys.stdout.flush()
