"""The `.dot` records: old files load, a round trip keeps every key, and each rule reads them once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dot_tasks.errors import DotError
from dot_tasks.layout import BuildPaths, live_notes_dir
from dot_tasks.records import (
    BUILD_RECORD_VERSION,
    COMMIT_RECORD_VERSION,
    LIVE_NOTE_VERSION,
    BuildRecord,
    CommitRecord,
    LiveNote,
    live_marks,
    protected_commits,
)

DATA = Path(__file__).parent / "data" / "records"
#: build.json exactly as dot-tasks wrote it before versions (copied from real builds: see data/records/README.md).
TODAYS_BUILDS = [
    "build_success.json",
    "build_deferred_cloned.json",
    "build_failed.json",
    "build_with_previous.json",
    "build_running.json",
]
COMMIT = "034229bb70f4bc7dce084aef3ec2822a14bb20a0"


def _data(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def _context(tmp_path: Path, record: str, context: str = "dev") -> BuildPaths:
    paths = BuildPaths(tmp_path, COMMIT)
    paths.context(context).context_dir.mkdir(parents=True)
    shutil.copy(DATA / record, paths.context(context).record)
    return paths


@pytest.mark.parametrize("name", TODAYS_BUILDS)
def test_todays_build_records_load_and_save_every_key_unchanged(tmp_path: Path, name: str) -> None:
    on_disk = _data(name)
    ctx = _context(tmp_path, name).context("dev")
    record = BuildRecord.load(ctx)
    assert record is not None and record.schema_version == 0  # written before versions
    assert record.to_json() == {**on_disk, "schema_version": BUILD_RECORD_VERSION}
    record.save()
    assert json.loads(ctx.record.read_text()) == {**on_disk, "schema_version": BUILD_RECORD_VERSION}
    again = BuildRecord.load(ctx)
    assert again == record.change(schema_version=BUILD_RECORD_VERSION)


def test_the_first_releases_record_loads_with_defaults_and_keeps_its_keys() -> None:
    on_disk = _data("build_first_release.json")
    record = BuildRecord.from_json(on_disk)
    assert record is not None
    assert (record.deferred_to, record.partial, record.cloned, record.previous) == (None, False, False, None)
    assert record.nodes is None  # no per-node results: the gate says so, rather than pass it
    written = record.to_json()
    assert {k: written[k] for k in on_disk} == on_disk
    assert "nodes" not in written and "previous" not in written and "error" not in written


def test_unknown_keys_survive_a_round_trip() -> None:
    record = BuildRecord.from_json({**_data("build_success.json"), "from_a_later_patch": {"x": 1}})
    assert record is not None and record.to_json()["from_a_later_patch"] == {"x": 1}


def test_a_record_of_a_newer_dot_tasks_is_refused(tmp_path: Path) -> None:
    paths = _context(tmp_path, "build_success.json")
    record = paths.context("dev").record
    record.write_text(json.dumps({**_data("build_success.json"), "schema_version": BUILD_RECORD_VERSION + 1}))
    with pytest.raises(DotError, match="newer dot-tasks"):
        BuildRecord.load(paths.context("dev"))


def test_missing_empty_and_cut_short_records_are_no_record(tmp_path: Path) -> None:
    ctx = BuildPaths(tmp_path, COMMIT).context("dev")
    assert BuildRecord.load(ctx) is None
    ctx.context_dir.mkdir(parents=True)
    for text in ("{}", '{"status": "succ'):
        ctx.record.write_text(text)
        assert BuildRecord.load(ctx) is None


def test_commit_record_round_trip(tmp_path: Path) -> None:
    paths = BuildPaths(tmp_path, COMMIT)
    paths.build_dir.mkdir(parents=True)
    shutil.copy(DATA / "commit.json", paths.commit_record)
    record = CommitRecord.load(paths)
    assert record is not None and record.short == "034229bb" and CommitRecord.short_of(paths) == "034229bb"
    assert record.to_json() == {**_data("commit.json"), "schema_version": COMMIT_RECORD_VERSION}
    record.with_ref("main").save()
    assert json.loads(paths.commit_record.read_text())["refs"] == [COMMIT, "main"]


@pytest.mark.parametrize("name", ["live_note.json", "live_note_pending.json"])
def test_live_notes_round_trip(tmp_path: Path, name: str) -> None:
    folder = live_notes_dir(tmp_path)
    folder.mkdir(parents=True)
    shutil.copy(DATA / name, folder / "prod.json")
    note = LiveNote.load_all(tmp_path)["prod"]
    assert note.to_json() == {**_data(name), "schema_version": LIVE_NOTE_VERSION}
    note.save(tmp_path)
    assert LiveNote.load_all(tmp_path) == {"prod": note}


def test_live_marks_and_protection_from_the_notes(tmp_path: Path) -> None:
    live, before, next_ = "a" * 40, "b" * 40, "c" * 40
    LiveNote("prod", commit=live, short="aaaaaaaa", previous_commit=before, action="promote").save(tmp_path)
    LiveNote("dev", pending=next_).save(tmp_path)
    assert live_marks(tmp_path) == {(live, "prod"): "live", (before, "prod"): "rollback", (next_, "dev"): "live?"}
    assert protected_commits(tmp_path) == {
        live: "live for prod",
        before: "rollback target for prod",
        next_: "maybe live for dev (run `dot-tasks live`)",
    }
    LiveNote.forget(tmp_path, "dev")
    assert set(LiveNote.load_all(tmp_path)) == {"prod"}


def test_usable_as_base(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    good = BuildRecord.from_json(_data("build_success.json"))
    assert good is not None and good.unusable_as_base(manifest) == f"has no {manifest}"
    manifest.write_text("{}")
    assert good.usable_as_base(manifest)
    assert good.change(status="failed").unusable_as_base(manifest) == "did not succeed (status failed)"
    assert good.change(schema=None).unusable_as_base(manifest) == "records no schema"
    partial = BuildRecord.from_json({**_data("build_deferred_cloned.json"), "cloned": False})
    assert partial is not None and partial.unusable_as_base(manifest) == "is itself partial (deferred to prod@7678fc4fa757 without --clone)"
    cloned = BuildRecord.from_json(_data("build_deferred_cloned.json"))
    assert cloned is not None and cloned.usable_as_base(manifest)


def test_interrupted_only_when_running_and_unlocked() -> None:
    running = BuildRecord.from_json(_data("build_running.json"))
    assert running is not None
    assert running.interrupted(lock_held=False) and running.shown_status(lock_held=False) == "interrupted"
    assert not running.interrupted(lock_held=True) and running.shown_status(lock_held=True) == "running"
    done = running.change(status="success")
    assert not done.interrupted(lock_held=False)


def test_promotable_reads_the_nodes() -> None:
    record = BuildRecord.from_json(_data("build_success.json"))
    assert record is not None
    manifest = {
        "nodes": {
            "model.shop.orders": {"resource_type": "model", "config": {}},
            "seed.shop.raw_orders": {"resource_type": "seed", "config": {}},
            "test.shop.not_null_orders_order_id.cf6c17daed": {"resource_type": "test"},
        }
    }
    assert record.promotable(manifest, COMMIT, "prod")
    warned = record.change(nodes={**dict(record.nodes or {}), "test.shop.not_null_orders_order_id.cf6c17daed": "warn"})
    assert warned.promotable(manifest, COMMIT, "prod") and not warned.promotable(manifest, COMMIT, "prod", fail_on_warn=True)
    assert "being built right now" in "; ".join(record.change(status="running").promotion_problems(manifest, COMMIT, "prod"))
    assert "another commit" in "; ".join(record.promotion_problems(manifest, "b" * 40, "prod"))
    assert "no per-node results" in "; ".join(record.change(nodes=None).promotion_problems(manifest, COMMIT, "prod"))
    failed = BuildRecord.from_json(_data("build_failed.json"))
    assert failed is not None and not failed.promotable(manifest, failed.commit, "dev")


def test_owned_schemas_never_include_lookalikes() -> None:
    record = BuildRecord(schema="dev_1234abcd", schemas=("dev", "dev_1234abcd_marts", "dev_1234abcdx"))
    assert record.owned_schemas("1234abcd", also=["dev_1234abcd_snap", "dev_deadbeef"]) == [
        "dev_1234abcd",
        "dev_1234abcd_marts",
        "dev_1234abcd_snap",
    ]
