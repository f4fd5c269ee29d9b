"""Generated diff objects for the lineage report: a dbt-shaped project of N models with K changes.

The shape follows `dot-tasks diff --json` (issue "diff", section 6, plus `lineage`):
seeds feed staging models, staging feeds intermediate models, and those feed marts.
Changes are spread over the layers: modified models (values change downstream, so
their descendants are impacted), a few added and removed models, a column added and
a column retyped. Deterministic for a given seed. Used by `bench.py report` and by
`screenshot_report.py`; it is input for the renderer, not a stand-in for `diff`.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dot_tasks.diffing import DiffResult

LAYERS = (("seed", "raw_", 0.12), ("model", "stg_", 0.28), ("model", "int_", 0.30), ("model", "fct_", 0.30))
WORDS = (
    "orders",
    "customers",
    "payments",
    "refunds",
    "sessions",
    "products",
    "inventory",
    "shipments",
    "invoices",
    "accounts",
    "campaigns",
    "clicks",
    "subscriptions",
    "returns",
    "suppliers",
    "stores",
)


def _side(ref: str, commit: str) -> dict[str, str]:
    return {"ref": ref, "commit": commit, "context": "dev", "schema": f"dev_{commit[:8]}"}


def _layers(models: int) -> tuple[list[list[str]], dict[str, tuple[str, str]]]:
    """The unique ids of each layer (seeds, staging, intermediate, marts), and each id's (name, kind)."""
    layers: list[list[str]] = []
    names: dict[str, tuple[str, str]] = {}
    count = 0
    for depth, (kind, prefix, share) in enumerate(LAYERS):
        size = max(1, round(models * share)) if depth < len(LAYERS) - 1 else models - count
        layer = []
        for i in range(size):
            name = f"{prefix}{WORDS[i % len(WORDS)]}{'' if i < len(WORDS) else '_' + str(i // len(WORDS))}"
            uid = f"{kind}.shop.{name}"
            names[uid] = (name, kind)
            layer.append(uid)
        layers.append(layer)
        count += size
    return layers, names


def _edges(rnd: random.Random, layers: list[list[str]], area: dict[str, str]) -> list[list[str]]:
    """[parent, child] pairs: most parents from the child's area one or two layers up, a few from another area."""
    edges: list[list[str]] = []
    for depth in range(1, len(layers)):
        for child in layers[depth]:
            near = [u for layer in layers[max(0, depth - 2) : depth] for u in layer if area[u] == area[child]]
            far = [u for u in layers[depth - 1] if area[u] != area[child]]
            parents = rnd.sample(near, min(len(near), rnd.choice((1, 1, 2)))) or rnd.sample(layers[depth - 1], 1)
            if rnd.random() < 0.12:
                parents += rnd.sample(far, 1)
            for parent in parents:
                if [parent, child] not in edges:
                    edges.append([parent, child])
    return edges


def _changes(rnd: random.Random, layers: list[list[str]], area: dict[str, str], changes: int) -> list[str]:
    """The models a pull request changes, mostly in three areas (it touches a few, not the whole project)."""
    model_uids = [u for layer in layers[1:] for u in layer]
    touched_areas = rnd.sample(sorted({area[u] for u in model_uids}), 3)
    candidates = [u for u in model_uids if area[u] in touched_areas]
    picked = rnd.sample(candidates, min(changes, len(candidates)))
    picked += rnd.sample([u for u in model_uids if u not in picked], changes - len(picked))
    return picked


def _downstream(edges: list[list[str]], roots: list[str]) -> set[str]:
    """Every descendant of `roots`."""
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    impacted: set[str] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in impacted:
                impacted.add(child)
                todo.append(child)
    return impacted


def _samples(
    rnd: random.Random,
    columns: list[str],
    counts: dict[str, int],
    per_column: dict[str, int],
    touched: list[str],
    base_rows: int,
    sample: int,
) -> list[dict[str, Any]]:
    """Up to `sample` example rows of each kind (added, removed, changed)."""
    samples = []
    for kind_, n in counts.items():
        for k in range(min(sample, n)):
            key = [base_rows + k if kind_ == "added" else k * 7 + 1]
            base = [rnd.randrange(100) if c != columns[1] or rnd.random() < 0.9 else None for c in columns[1:]]
            head = [v if per_column[c] == 0 or rnd.random() < 0.5 else (v or 0) + 1 for c, v in zip(columns[1:], base, strict=False)]
            if kind_ == "changed" and head == base:
                head[columns[1:].index(touched[0])] = (base[columns[1:].index(touched[0])] or 0) + 1
            sample_row: dict[str, Any] = {"kind": kind_, "key": {columns[0]: key[0]}}
            if kind_ != "added":
                sample_row["base"] = dict(zip(columns[1:], base, strict=True))
            if kind_ != "removed":
                sample_row["head"] = dict(zip(columns[1:], head, strict=True))
            samples.append(sample_row)
    return samples


def _changed_values(rnd: random.Random, node: dict[str, Any], columns: list[str], base_rows: int, sample: int) -> None:
    """Row counts, columns, per-column counts and samples of a modified or impacted node."""
    modified = node["code"] == "modified"
    changed = rnd.randrange(0, base_rows // 5 + 1) if modified else rnd.randrange(0, base_rows // 50 + 1)
    plus = rnd.randrange(0, base_rows // 100 + 1)
    minus = rnd.randrange(0, base_rows // 100 + 1)
    node["rows"]["head"] = base_rows + plus - minus
    if modified and rnd.random() < 0.3:
        node["columns"]["added"].append("loaded_at")
    if modified and rnd.random() < 0.2:
        node["columns"]["type_changed"].append({"name": columns[1], "base": "integer", "head": "numeric(18,2)"})
    touched = rnd.sample(columns[1:], rnd.randrange(1, len(columns)))
    per_column = {c: (rnd.randrange(1, changed + 1) if c in touched and changed else 0) for c in columns[1:]}
    if changed:
        per_column[touched[0]] = changed
    counts = {"added": plus, "removed": minus, "changed": changed}
    node["values"] = {
        "key": [columns[0]],
        "added": plus,
        "removed": minus,
        "changed": changed,
        "unchanged": base_rows - minus - changed,
        "columns": per_column,
        "sample": _samples(rnd, columns, counts, per_column, touched, base_rows, sample),
    }


def _node(rnd: random.Random, uid: str, name: str, kind: str, code: str, impacted: bool, sample: int) -> dict[str, Any]:
    """One node of the diff, as `diff --json` prints it."""
    base_rows = rnd.randrange(1_000, 2_000_000)
    columns = [
        f"{w}_id" if i == 0 else f"{w}_{c}"
        for i, (w, c) in enumerate([(name.split("_", 1)[1], "id")] + [("col", str(j)) for j in range(1, rnd.randrange(4, 9))])
    ]
    node: dict[str, Any] = {
        "name": name,
        "unique_id": uid,
        "resource_type": kind,
        "code": code,
        "impacted": impacted,
        "columns": {"added": [], "removed": [], "type_changed": [], "order_changed": False},
        "rows": {"base": base_rows, "head": base_rows},
        "values": None,
        "values_skipped": None,
        "key_source": "meta.primary_key",
        "relations": {
            "base": None if code == "added" else {"database": "shop", "schema": "dev_4f1c2a9e", "identifier": name},
            "head": None if code == "removed" else {"database": "shop", "schema": "dev_9b3e77d1", "identifier": name},
        },
    }
    if code == "added":
        node["rows"] = {"base": None, "head": base_rows}
    elif code == "removed":
        node["rows"] = {"base": base_rows, "head": None}
    elif code == "modified" or impacted:
        _changed_values(rnd, node, columns, base_rows, sample)
    else:
        node["values"] = {
            "key": [columns[0]],
            "added": 0,
            "removed": 0,
            "changed": 0,
            "unchanged": base_rows,
            "columns": {c: 0 for c in columns[1:]},
            "sample": [],
        }
    return node


def synthetic_diff(models: int = 200, changes: int = 20, seed: int = 7, sample: int = 5) -> dict[str, Any]:
    """The `diff --json` object (`DiffResult.from_dict` reads it) of a generated project of `models` models and `changes` changes, the same for a given seed."""
    rnd = random.Random(seed)
    layers, names = _layers(models)
    # Models belong to a subject area (the word in their name), as in a real project.
    area = {uid: names[uid][0].split("_", 1)[1].split("_")[0] for uid in names}
    edges = _edges(rnd, layers, area)
    picked = _changes(rnd, layers, area, changes)
    added, removed = picked[:2], picked[2:4]
    modified = picked[4:]
    impacted = _downstream(edges, list(modified) + list(added))
    nodes = []
    for uid, (name, kind) in names.items():
        code = "added" if uid in added else "removed" if uid in removed else "modified" if uid in modified else "unchanged"
        nodes.append(_node(rnd, uid, name, kind, code, code == "unchanged" and uid in impacted, sample))
    lineage = {
        "nodes": {
            n["unique_id"]: {
                "name": n["name"],
                "resource_type": n["resource_type"],
                "code": n["code"],
                "impacted": n["impacted"],
                "in_selection": True,
            }
            for n in nodes
        },
        "edges": edges,
    }
    return {
        "base": _side("main", "4f1c2a9e" + "0" * 32),
        "head": _side("feature/new-margins", "9b3e77d1" + "1" * 32),
        "differs": True,
        "errors": 0,
        "same_database": True,
        "adapter_type": "duckdb",
        "seconds": 1.0,
        "nodes": nodes,
        "lineage": lineage,
    }


# --- the bundled example, committed twice with a known change -----------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = REPO_ROOT / "examples" / "shop"
#: The second commit's change: a returned order no longer counts its payments. `orders` is
#: modified (one column, `amount`, changes in the returned orders' rows) and `customers`,
#: untouched, is impacted through `lifetime_value`.
CHANGED_MODEL = "orders"
BRANCH = "returns-keep-no-payment"
CHANGED_SQL = "        case when orders.status = 'returned' then 0 else coalesce(payments.amount, 0) end as amount\n"


def make_example_project(root: Path) -> tuple[Path, str, str]:
    """A git repository holding a copy of examples/shop on `main`, and the change on BRANCH.

    Returns (project dir, first commit, second commit). Git runs with whatever identity the
    caller's environment gives (the tests' hermetic fixture sets one).
    """
    project = root / "shop"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".dot", "target", "logs", "*.duckdb*", "dbt_packages"))

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=project, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "shop as bundled")
    first = git("rev-parse", "HEAD")
    git("switch", "-q", "-c", BRANCH)
    orders = project / "models" / "marts" / f"{CHANGED_MODEL}.sql"
    text = orders.read_text()
    old = "    coalesce(payments.amount, 0) as amount\n"
    if old not in text:
        raise RuntimeError(f"{orders} no longer has the line the example change rewrites: update report_diffs.CHANGED_SQL")
    orders.write_text(text.replace(old, CHANGED_SQL))
    git("commit", "-q", "-am", "orders: a returned order keeps no payment")
    second = git("rev-parse", "HEAD")
    return project, first, second


def example_diff(project: Path, first: str, second: str) -> DiffResult:
    """`diffing.diff_builds` over the example's two commits (building both sides into its DuckDB file)."""
    from dot_tasks import builds, diffing

    ws = builds.Workspace.open(builds.Settings(), cwd=project)
    return diffing.diff_builds(ws, diffing.DiffOptions(base="dev@main", head=f"dev@{BRANCH}"))
