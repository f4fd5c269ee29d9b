"""The `.dot` records: the only code that reads or writes them.

A record is a fact about the past on this machine: what a build did
(`BuildRecord`, `<commit>/<context>/build.json`), the schema suffix a commit
was given (`CommitRecord`, `<commit>/commit.json`), and the last switch of a
context seen from here (`LiveNote`, `.dot/live/<context>.json`). Each is a
frozen dataclass with a `schema_version`, one loader and one writer, and one
method for each rule other rooms judge it by, so a rule is written once.

Records written before versions (no `schema_version`, fields missing) load
with defaults; keys this version does not know are kept, so a round trip
loses nothing. A record from a newer dot-tasks is refused, as dbt-core
refuses an artifact of a newer schema. Paths are never taken from a record:
the loader is given them (`layout`), and each record remembers where it lives.

One module per file: `build` (build.json, and the rules a build is judged
by), `commit` (commit.json), `live` (the live notes); `fields` holds what
their loaders share. Model: dbt-core's versioned artifacts, and SQLMesh's
`Environment` read through its `StateReader`.
"""

from __future__ import annotations

from .build import BUILD_RECORD_VERSION, BuildRecord, BuildStatus, DeferredTo, PreviousInvocation, owned_schemas
from .commit import COMMIT_RECORD_VERSION, CommitRecord
from .live import LIVE_NOTE_VERSION, LiveNote, live_marks, protected_commits

__all__ = [
    "BUILD_RECORD_VERSION",
    "COMMIT_RECORD_VERSION",
    "LIVE_NOTE_VERSION",
    "BuildRecord",
    "BuildStatus",
    "CommitRecord",
    "DeferredTo",
    "LiveNote",
    "PreviousInvocation",
    "live_marks",
    "owned_schemas",
    "protected_commits",
]
