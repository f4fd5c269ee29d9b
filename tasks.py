"""`inv` entry point for this repository: the same tasks as the `dot-tasks` program.

`invoke.yaml` beside this file points them at the bundled example project.
"""

from __future__ import annotations

from dot_tasks.tasks import ns  # noqa: F401  (Invoke looks for `ns`)
