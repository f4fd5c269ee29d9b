"""`<commit>/<context>/build.json`: what one (commit, context) build did, and the rules it is judged by."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from ..files import read_json, write_json_atomic
from ..layout import ContextPaths
from ..node_results import node_problems
from .fields import check_version, optional_str, strings

#: The shape written. A record without one was written before versions (0).
BUILD_RECORD_VERSION = 1
#: What a build record says of its last dbt invocation. `list` shows `interrupted` for a
#: `running` record whose build lock is free: the build was killed.
BuildStatus = Literal["running", "success", "failed"]


@dataclass(frozen=True)
class DeferredTo:
    """The build a partial build deferred to: dbt read its unchanged nodes from `schema`."""

    commit: str
    context: str
    schema: str

    @classmethod
    def from_json(cls, data: Any) -> DeferredTo | None:
        """The base named in a record, or None when there is none (or it is unreadable)."""
        if not isinstance(data, Mapping) or not data.get("commit") or not data.get("context"):
            return None
        return cls(str(data["commit"]), str(data["context"]), str(data.get("schema") or ""))

    def to_json(self) -> dict[str, str]:
        """As `build.json` and the `run --json` summary carry it."""
        return {"commit": self.commit, "context": self.context, "schema": self.schema}


@dataclass(frozen=True)
class PreviousInvocation:
    """The invocation before a build's last one: `promote` accepts a `test` that follows a good `run`."""

    command: str | None
    args: tuple[str, ...] | None
    status: str | None
    exit_code: int | None
    finished: str | None

    @classmethod
    def from_json(cls, data: Any) -> PreviousInvocation | None:
        """The `previous` of a record, or None when it has none."""
        if not isinstance(data, Mapping):
            return None
        args = data.get("args")
        return cls(
            optional_str(data.get("command")),
            strings(args) if args is not None else None,
            optional_str(data.get("status")),
            data.get("exit_code"),
            optional_str(data.get("finished")),
        )

    def to_json(self) -> dict[str, Any]:
        """The five keys, `null` where unknown, as `build()` has always written them."""
        return {
            "command": self.command,
            "args": None if self.args is None else list(self.args),
            "status": self.status,
            "exit_code": self.exit_code,
            "finished": self.finished,
        }


#: The keys a finished build adds, written together once dbt has returned.
_FINISHED_KEYS = ("exit_code", "finished", "adapter_type", "dbt_version", "adapter_version")
_BUILD_KEYS = frozenset(
    {"schema_version", "commit", "context", "target", "ref", "command", "args", "status", "started", "pid"}
    | {"deferred_to", "partial", "cloned", "schemas", "previous", "schema", "nodes", "error", *_FINISHED_KEYS}
)


@dataclass(frozen=True)
class BuildRecord:
    """What one (commit, context) build did: `<commit>/<context>/build.json`.

    Written `running` before dbt starts (so a killed build is still known,
    with the schema it was making), and again when dbt returns. Diff's
    default base, promote's gate and clean's dependants all read it.
    """

    commit: str = ""
    context: str = ""
    target: str = ""
    #: The ref the user named (None when the build was started from a commit hash alone).
    ref: str | None = None
    #: The dbt command, space-separated (`build`, `run`, `test`, ...).
    command: str = ""
    #: dbt's arguments as run, deferral flags included.
    args: tuple[str, ...] = ()
    status: BuildStatus = "running"
    started: str = ""
    pid: int | None = None
    deferred_to: DeferredTo | None = None
    #: Deferred: dbt built only what changed since the base.
    partial: bool = False
    #: `dbt clone` then filled the build's schemas with the rest of the base.
    cloned: bool = False
    #: Every schema a build of this context made, for `clean`.
    schemas: tuple[str, ...] = ()
    previous: PreviousInvocation | None = None
    schema: str | None = None
    #: unique_id → last status across the invocations since the last full one; None: an older
    #: dot-tasks wrote no per-node results.
    nodes: Mapping[str, str] | None = None
    exit_code: int | None = None
    #: When dbt returned; None while running. The other finishing keys are written with it.
    finished: str | None = None
    adapter_type: str | None = None
    dbt_version: str | None = None
    adapter_version: str | None = None
    error: str | None = None
    #: The version the record was read in (the current one for a record made here).
    schema_version: int = field(default=BUILD_RECORD_VERSION, compare=False)
    #: Keys this version does not know, kept so that a save loses nothing.
    extra: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: Where the record lives; not part of it.
    path: Path | None = field(default=None, compare=False, repr=False)

    @classmethod
    def load(cls, ctx: ContextPaths) -> BuildRecord | None:
        """The context's record, or None when it was never written (or is empty or cut short)."""
        return cls.from_json(read_json(ctx.record), ctx.record)

    @classmethod
    def from_json(cls, data: Any, path: Path | None = None) -> BuildRecord | None:
        """A record from its JSON, of any version this one reads; None for no record."""
        if not isinstance(data, Mapping) or not data:
            return None
        version = check_version(data, path, BUILD_RECORD_VERSION)
        nodes = data.get("nodes")
        pid = data.get("pid")
        return cls(
            commit=str(data.get("commit") or ""),
            context=str(data.get("context") or ""),
            target=str(data.get("target") or ""),
            ref=optional_str(data.get("ref")),
            command=str(data.get("command") or ""),
            args=strings(data.get("args")),
            status=cast(BuildStatus, str(data.get("status") or "running")),
            started=str(data.get("started") or ""),
            pid=pid if isinstance(pid, int) else None,
            deferred_to=DeferredTo.from_json(data.get("deferred_to")),
            partial=bool(data.get("partial")),
            cloned=bool(data.get("cloned")),
            schemas=strings(data.get("schemas")),
            previous=PreviousInvocation.from_json(data.get("previous")),
            schema=optional_str(data.get("schema")),
            nodes={str(k): str(v) for k, v in nodes.items()} if isinstance(nodes, Mapping) else None,
            exit_code=data.get("exit_code"),
            finished=optional_str(data.get("finished")),
            adapter_type=optional_str(data.get("adapter_type")),
            dbt_version=optional_str(data.get("dbt_version")),
            adapter_version=optional_str(data.get("adapter_version")),
            error=optional_str(data.get("error")),
            schema_version=version,
            extra={k: v for k, v in data.items() if k not in _BUILD_KEYS},
            path=path,
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON written: the keys `build()` has always written, and `schema_version`."""
        data: dict[str, Any] = {
            **self.extra,
            "commit": self.commit,
            "context": self.context,
            "target": self.target,
            "ref": self.ref,
            "command": self.command,
            "args": list(self.args),
            "status": self.status,
            "started": self.started,
            "pid": self.pid,
            "deferred_to": self.deferred_to.to_json() if self.deferred_to else None,
            "partial": self.partial,
            "cloned": self.cloned,
            "schemas": list(self.schemas),
            "schema": self.schema,
        }
        if self.nodes is not None:
            data["nodes"] = dict(self.nodes)
        if self.previous is not None:
            data["previous"] = self.previous.to_json()
        if self.finished is not None:
            data.update({key: getattr(self, key) for key in _FINISHED_KEYS})
        if self.error is not None:
            data["error"] = self.error
        data["schema_version"] = BUILD_RECORD_VERSION
        return data

    def save(self) -> None:
        """Write the record where it was loaded from (or placed with `at`), atomically."""
        if self.path is None:
            raise ValueError("a BuildRecord made in memory needs .at(ctx) before it can be saved")
        write_json_atomic(self.path, self.to_json())

    def at(self, ctx: ContextPaths) -> BuildRecord:
        """This record, to be saved as the context's `build.json`."""
        return replace(self, path=ctx.record)

    def as_previous(self) -> PreviousInvocation:
        """This record's invocation, as the next build's record remembers it."""
        return PreviousInvocation(self.command, self.args, self.status, self.exit_code, self.finished)

    def change(self, **changes: Any) -> BuildRecord:
        """A copy with `changes` (dataclasses.replace), keeping where it lives."""
        return replace(self, **changes)

    # --- the rules other rooms judge a build by ---

    @property
    def succeeded(self) -> bool:
        """Its last dbt invocation succeeded."""
        return self.status == "success"

    @property
    def is_partial(self) -> bool:
        """Deferred without --clone: it built only part of the project and reads the rest from its base."""
        return self.partial and not self.cloned

    def interrupted(self, lock_held: bool) -> bool:
        """`running`, but nothing holds its build lock: the build was killed."""
        return self.status == "running" and not lock_held

    def shown_status(self, lock_held: bool) -> str:
        """The status `list` shows: `interrupted` for a killed build, else the recorded one."""
        return "interrupted" if self.interrupted(lock_held) else self.status

    def owned_schemas(self, short: str, also: tuple[str, ...] | list[str] = ()) -> list[str]:
        """The schemas `clean` may drop for this build (see `owned_schemas`); `also` adds schemas found elsewhere."""
        return owned_schemas(self.schema, [*self.schemas, *also], short)

    def unusable_as_base(self, manifest: Path) -> str | None:
        """Why a build cannot be deferred to (`--defer-to`), or None when it can.

        `manifest` is the build's target/manifest.json, dbt's `--state`.
        """
        if not self.succeeded:
            return f"did not succeed (status {self.status})"
        if self.is_partial:
            base = self.deferred_to or DeferredTo("None", "None", "")
            return f"is itself partial (deferred to {base.context}@{base.commit[:12]} without --clone)"
        if not manifest.is_file():
            return f"has no {manifest}"
        if not self.schema:
            return "records no schema"
        return None

    def usable_as_base(self, manifest: Path) -> bool:
        """A build another can defer to: successful, complete, with a manifest and a schema."""
        return self.unusable_as_base(manifest) is None

    def diffable(self, manifest: Path) -> bool:
        """A build `diff` can compare: successful, with its manifest."""
        return self.succeeded and manifest.is_file()

    def partial_problem(self) -> str | None:
        """The slim-CI contract: a deferred build that built only part of the project cannot go live."""
        if self.is_partial:
            return (
                "it is a partial build deferred to another build (without --clone), so the live schema would "
                "be missing models: rebuild it in full, or with --clone"
            )
        return None

    def promotion_problems(self, manifest: Mapping[str, Any] | None, commit: str, context: str, fail_on_warn: bool = False) -> list[str]:
        """Why the build may not go live, by the gate; empty when it may.

        The gate judges the build, not its last invocation: every model, seed
        and snapshot of its manifest was built successfully, and every test
        passed (not warned, with `fail_on_warn`), by the invocations since the
        last full one (`node_results.node_statuses`). A selected re-run repairs a
        failed node only by passing it; the last invocation must have succeeded too.
        """
        problems: list[str] = []
        if self.commit not in ("", commit) or self.context not in ("", context):
            problems.append("its build record belongs to another commit or context")
        if self.status == "running":
            problems.append("it is being built right now (or its build was interrupted)")
        elif self.status != "success" or self.exit_code not in (0, None):
            problems.append(f"its last dbt {self.command or 'invocation'} failed (exit {self.exit_code})")
        if self.nodes is None:
            problems.append("its build record has no per-node results (made by an older dot-tasks)")
            return problems
        if not manifest:
            problems.append("its manifest.json is missing")
            return problems
        return problems + node_problems(self.nodes, manifest, fail_on_warn)

    def promotable(self, manifest: Mapping[str, Any] | None, commit: str, context: str, fail_on_warn: bool = False) -> bool:
        """The gate passes: nothing in `promotion_problems`."""
        return not self.promotion_problems(manifest, commit, context, fail_on_warn)


def owned_schemas(schema: Any, schemas: Any, short: str) -> list[str]:
    """The schemas a build may drop: its own `<schema>_<short>` and `<schema>_<short>_*` only.

    Anything else it recorded (a decoy, a schema the user's project wrote with
    --allow-shared-schemas) is never dropped. Takes a registry row's values as
    well as a record's, hence the loose types.
    """
    if not isinstance(schema, str) or not schema.lower().endswith("_" + short.lower()):
        return []
    prefix = schema.lower() + "_"
    candidates = {schema, *[s for s in schemas or [] if isinstance(s, str)]}
    return sorted(s for s in candidates if s.lower() == schema.lower() or s.lower().startswith(prefix))
