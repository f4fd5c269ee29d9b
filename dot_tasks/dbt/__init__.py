"""Running dbt: the only package that starts a dbt process or imports dbt.

The rule: dbt is imported only here, and only in the child process that
`client` starts (`python -m dot_tasks.dbt.child`), because importing it costs
seconds that steps which do not build must not pay. The parent-side modules
never import dbt:

- `guard`: the isolation rules, pure (reserved flags, which nodes may be built).
- `protocol`: the dataclasses the parent and the child send each other.
- `client`: the parent side, one transport for every call (`run_dbt`,
  `call_macros`, `run_macro_jobs`, `MacroSession`), and the errors they raise.

The child-side modules import dbt, inside their functions:

- `child`: the entry point and its table of modes.
- `child_build`: the `build` mode (deps, the command, `--clone`'s clone).
- `child_guard`: the guard inside dbt's run, and the build's registry start.
- `child_ops`: the `ops`, `jobs` and `session` modes.
- `child_common`: what the modes share.

Import the name you need from its module (`from .dbt.client import run_dbt`),
so each import says which side it is on; this file re-exports nothing.
"""
