"""`python -m dot_tasks` is the `dot-tasks` program."""

from __future__ import annotations

from .main import program

program.run()
