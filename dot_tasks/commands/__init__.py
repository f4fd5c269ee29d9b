"""The Invoke tasks, one module per capability; `dot_tasks.tasks` gathers them."""
