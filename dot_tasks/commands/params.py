"""Every flag more than one command takes, explained once (dbt-core's `cli/params.py`).

A task still lists its flags in its signature, because Invoke reads them from
there; what lives here is what they mean. `dot_task` (in `common`) gives each
task the entries of `SHARED_HELP` its signature names, so a task writes help
only for its own flags, or for a shared one it means differently (`clean
--ref`, `list --json`).
"""

from __future__ import annotations

# Worded for every command that takes them (build, promote, clean, ...), not for one.
H_REF = "The git ref: branch, tag, HEAD~2, short or full hash (default: HEAD)."
H_CONTEXT = (
    "The context: a target of your profile, e.g. dev or prod, or a name dot.contexts maps to one (default: the profile's default target)."
)
H_SPEC = "CTX@REF, e.g. dev@main (or @REF for the default context); dot-tasks also takes it as a bare word, as it takes a bare REF."
H_PROJECT = "The dbt project's root (default: dot.project_dir, else found upward from the current directory)."
H_PROFILES = "Directory of the profiles.yml to start from (default: dbt's order: DBT_PROFILES_DIR, current dir, project dir, ~/.dbt)."
H_JSON = "Print the result as one JSON object on stdout."
H_VERBOSE = "Show dbt's own banner and logs on stderr."

#: Help by parameter name (as Invoke names it: `json` for `json_`), for whichever task has the parameter.
SHARED_HELP = {
    "ref": H_REF,
    "context": H_CONTEXT,
    "spec": H_SPEC,
    "project_dir": H_PROJECT,
    "profiles_dir": H_PROFILES,
    "json": H_JSON,
    "verbose": H_VERBOSE,
}

#: The flags of a dbt build, shared by `build` and `run`.
H_BUILD = {
    "command": "dbt command to run, e.g. build, run, test, seed, snapshot, compile, 'docs generate' (default: build).",
    "select": "dbt --select expression.",
    "exclude": "dbt --exclude expression.",
    "deps": "Run `dbt deps` first, once per commit, when the commit declares packages (--no-deps skips it).",
    "allow_shared_schemas": "Build even if some node would write outside the build's own schema (warns).",
    "defer_to": "CTX@REF of a successful build to defer to: build only what changed since it (state:modified+ "
    "unless --select), reading every other ref from its schema.",
    "build_base": "With --defer-to: build the base first when it is missing or did not succeed.",
    "clone": "With --defer-to: then `dbt clone` every node not rebuilt from the base, so the schema is complete.",
    "rebuild_live": "Rebuild a commit that is live for the context (refused otherwise), then promote it again.",
}
