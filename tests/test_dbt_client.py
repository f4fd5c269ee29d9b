"""The dbt package's parent side, without dbt: the protocol's round trip, the error mapping, the import rule."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dot_tasks.dbt.client import failure
from dot_tasks.dbt.guard import check_nodes
from dot_tasks.dbt.protocol import (
    DbtOutcome,
    DbtRequest,
    JobsReport,
    Listing,
    MacroCall,
    MacroJobs,
    MacroOutcome,
    OpsReport,
    OpsRequest,
    OpsTarget,
    RegistryEvent,
)
from dot_tasks.errors import DbtFailed, DotError, IsolationError, LockTimeout, ProfileError

TARGET = OpsTarget("/profiles", "shop", "dev", "/logs")


def _through_json(value: object) -> object:
    payload = value.to_payload()  # type: ignore[attr-defined]
    return type(value).from_payload(json.loads(json.dumps(payload)))  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        DbtRequest("/p", "/pr", "dev", "/t", "/l", ["run"], ["--select", "a"], registry={"schema": "x_dot"}),
        DbtOutcome(2, schemas=["a", "a_b"], registry_collision={"commit": "abc"}, registered=True),
        OpsRequest([MacroCall(TARGET, "dot_clean_build", {"plan": {"schemas": ["a"]}})], "/scratch", quiet=True),
        OpsReport(outcomes=[MacroOutcome(value=[{"n": 1}]), MacroOutcome(error="boom")]),
        MacroJobs(TARGET, "m:f", [{"unique_id": "model.a"}], 4, Listing("/p", "/pr", "dev", ["a+"], [], state="/s")),
        JobsReport(selected=["model.a"], results=[None, MacroOutcome(value=3)]),
        RegistryEvent("dev_dot", {"commit_sha": "abc"}, live_schema="dev"),
    ],
)
def test_every_payload_comes_back_as_the_same_dataclass(value: object) -> None:
    # Nested dataclasses, lists of them, optional ones and tuples all survive JSON.
    assert _through_json(value) == value


def test_a_report_keeps_what_it_declares_only() -> None:
    outcome = DbtOutcome.from_payload({"exit_code": 1, "schema": "s", "something_new": 1})
    assert outcome == DbtOutcome(1, schema="s")


REQUEST = DbtRequest("/p", "/pr", "dev", "/t", "/logs", ["build"], [])


@pytest.mark.parametrize("kind", [IsolationError, ProfileError, LockTimeout, DotError])
def test_a_child_error_comes_back_as_its_own_kind(kind: type[DotError]) -> None:
    error = failure(DbtOutcome(3, error="what to do", error_kind=kind.__name__), REQUEST)
    assert type(error) is kind and str(error) == "what to do" and error.exit_code == 3


def test_an_unknown_kind_is_a_plain_dot_error_with_the_childs_exit_code() -> None:
    error = failure(DbtOutcome(0, error="a room's own", error_kind="DiffError"), REQUEST)
    assert type(error) is DotError and error.exit_code == 2


def test_a_failed_or_killed_dbt_is_dbt_failed() -> None:
    assert failure(DbtOutcome(0), REQUEST) is None
    killed = failure(DbtOutcome(-9), REQUEST)
    assert isinstance(killed, DbtFailed) and str(killed) == "dbt was killed by signal 9" and killed.exit_code == 2
    failed = failure(DbtOutcome(1, failed_command="clone"), REQUEST)
    assert isinstance(failed, DbtFailed) and failed.exit_code == 1
    assert str(failed) == "dbt clone failed (exit 1): see dbt's output above, or /logs/dbt.log"


def test_the_guard_checks_in_order_and_long_names_even_when_shared() -> None:
    node = {"unique_id": "model.shop.orders", "schema": "analytics", "database": None, "identifier": "o" * 70}
    common = {"schema": "dev_1234", "database": None, "adapter_type": "postgres"}
    overridden = check_nodes([node], expected_schema="dev_5678", check_isolation=True, **common)
    assert overridden is not None and "not this build's dev_5678" in str(overridden)
    long = check_nodes([node], expected_schema="dev_1234", check_isolation=False, **common)
    assert long is not None and "postgres cuts names at 63 bytes" in str(long)
    node["identifier"] = "orders"
    shared = check_nodes([node], expected_schema="dev_1234", check_isolation=True, **common)
    assert shared is not None and "model.shop.orders → analytics" in str(shared)
    assert check_nodes([node], expected_schema="dev_1234", check_isolation=False, **common) is None


def test_the_parent_side_never_imports_dbt() -> None:
    probe = (
        "import sys, dot_tasks.dbt, dot_tasks.dbt.client, dot_tasks.dbt.guard, dot_tasks.dbt.protocol; "
        "print(sorted(m for m in sys.modules if m == 'dbt' or m.startswith('dbt.')))"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout
