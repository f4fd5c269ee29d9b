"""The one Invoke collection: every task, and the `dot.*` defaults invoke.yaml can override.

Tasks live in `commands/`, one module per capability; this module only
gathers them, so `inv --list` and `dot-tasks --list` read like the ADR.
"""

from __future__ import annotations

from invoke import Collection

from .commands.common import DEFAULTS
from .commands.deploy import live, promote, retire, rollback
from .commands.diff import diff
from .commands.lifecycle import clean, list_
from .commands.recipes import ci_recipe
from .commands.steps import build, profile, resolve, run, worktree

ns = Collection(resolve, worktree, profile, build, run, list_, clean, diff, promote, rollback, live, retire, ci_recipe)
ns.configure({"dot": DEFAULTS})
