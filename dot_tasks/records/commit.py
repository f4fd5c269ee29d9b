"""`<commit>/commit.json`: the schema suffix a commit was given on its first build."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import read_json, write_json_atomic
from ..layout import BuildPaths
from .fields import check_version, strings

#: The shape written. A record without one was written before versions (0).
COMMIT_RECORD_VERSION = 1


@dataclass(frozen=True)
class CommitRecord:
    """A commit's schema suffix, claimed on its first build: `<commit>/commit.json`."""

    commit: str
    #: The suffix of the commit's schemas (`<schema>_<short>`), lengthened when another commit shares it.
    short: str
    #: The refs the commit was built as.
    refs: tuple[str, ...] = ()
    created: str = ""
    schema_version: int = field(default=COMMIT_RECORD_VERSION, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    path: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, paths: BuildPaths) -> CommitRecord | None:
        """The commit's record, or None before its first build."""
        data = read_json(paths.commit_record)
        if not isinstance(data, Mapping) or not data:
            return None
        return cls(
            commit=str(data.get("commit") or paths.commit),
            short=str(data.get("short") or ""),
            refs=strings(data.get("refs")),
            created=str(data.get("created") or ""),
            schema_version=check_version(data, paths.commit_record, COMMIT_RECORD_VERSION),
            extra={k: v for k, v in data.items() if k not in ("commit", "short", "refs", "created", "schema_version")},
            path=paths.commit_record,
        )

    @staticmethod
    def short_of(paths: BuildPaths) -> str | None:
        """The suffix recorded for the commit, or None when none is."""
        record = CommitRecord.load(paths)
        return record.short if record and record.short else None

    def to_json(self) -> dict[str, Any]:
        """The JSON written: commit, short, refs, created, and `schema_version`."""
        return {
            **self.extra,
            "commit": self.commit,
            "short": self.short,
            "refs": list(self.refs),
            "created": self.created,
            "schema_version": COMMIT_RECORD_VERSION,
        }

    def save(self, paths: BuildPaths | None = None) -> None:
        """Write the record atomically, where it was loaded from or to `paths`' commit.json."""
        path = paths.commit_record if paths is not None else self.path
        if path is None:
            raise ValueError("a CommitRecord made in memory needs the BuildPaths to save to")
        write_json_atomic(path, self.to_json())

    def with_ref(self, ref: str | None) -> CommitRecord:
        """The record with `ref` among its refs."""
        if ref is None or ref in self.refs:
            return self
        return replace(self, refs=(*self.refs, ref))
