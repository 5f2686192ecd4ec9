"""`callgate policy diff A B`: what changed between two stored versions, rule by rule.

Rules are matched by id. A rule present in both whose fields differ is listed with each changed
field's old and new value; `defaults` and the named address lists are compared too (lists by
how many entries were added and removed: they can hold 100k addresses). Stored documents are the
validated data, so formatting and comments never show up as changes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from shared.db import Pool
from shared.errors import PolicyError
from shared.jobs import JsonObject
from shared.policy.store import load_version


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: object  # None: absent
    new: object


@dataclass(frozen=True, slots=True)
class RuleChange:
    id: str
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True, slots=True)
class ListChange:
    name: str
    added: int
    removed: int


@dataclass(frozen=True, slots=True)
class PolicyDiff:
    """The rule-level difference from version `old` to version `new`."""

    old: int
    new: int
    added: tuple[str, ...]  # rule ids, in the new document's order
    removed: tuple[str, ...]  # rule ids, in the old document's order
    changed: tuple[RuleChange, ...]
    defaults: tuple[FieldChange, ...]
    lists: tuple[ListChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.defaults or self.lists)


def diff_documents(old: object, new: object, *, old_version: int = 0, new_version: int = 0) -> PolicyDiff:
    """Compare two stored (validated) documents."""
    a, b = _rules(old), _rules(new)
    changed = tuple(
        RuleChange(rule_id, fields) for rule_id in b if rule_id in a and (fields := _fields(a[rule_id], b[rule_id]))
    )
    return PolicyDiff(
        old=old_version,
        new=new_version,
        added=tuple(rule_id for rule_id in b if rule_id not in a),
        removed=tuple(rule_id for rule_id in a if rule_id not in b),
        changed=changed,
        defaults=_fields(_section(old, "defaults"), _section(new, "defaults")),
        lists=_lists(_section(old, "lists"), _section(new, "lists")),
    )


async def diff_versions(pool: Pool, old: int, new: int) -> PolicyDiff:
    """Compare two stored versions; PolicyError when either does not exist."""
    documents = []
    for version in (old, new):
        stored = await load_version(pool, version)
        if stored is None:
            raise PolicyError("version", f"no policy version {version}")
        documents.append(stored.document)
    return diff_documents(documents[0], documents[1], old_version=old, new_version=new)


def diff_data(d: PolicyDiff) -> JsonObject:
    """The JSON form (`--format json`, the admin API)."""
    return {
        "old": d.old,
        "new": d.new,
        "added": list(d.added),
        "removed": list(d.removed),
        "changed": [{"id": c.id, "fields": [_field_data(f) for f in c.fields]} for c in d.changed],
        "defaults": [_field_data(f) for f in d.defaults],
        "lists": [{"name": c.name, "added": c.added, "removed": c.removed} for c in d.lists],
    }


def diff_lines(d: PolicyDiff) -> list[str]:
    """The human form, one line per change."""
    lines = [f"policy {d.old} -> {d.new}"]
    lines += [f"+ rule {rule_id}" for rule_id in d.added]
    lines += [f"- rule {rule_id}" for rule_id in d.removed]
    for change in d.changed:
        lines.append(f"~ rule {change.id}")
        lines += [f"    {f.field}: {_show(f.old)} -> {_show(f.new)}" for f in change.fields]
    lines += [f"~ defaults.{f.field}: {_show(f.old)} -> {_show(f.new)}" for f in d.defaults]
    lines += [f"~ lists.{c.name}: +{c.added} -{c.removed}" for c in d.lists]
    if d.empty:
        lines.append("  no rule-level difference")
    return lines


def _section(document: object, key: str) -> dict[str, object]:
    value = document.get(key) if isinstance(document, dict) else None
    return value if isinstance(value, dict) else {}


def _rules(document: object) -> dict[str, dict[str, object]]:
    rules = document.get("rules") if isinstance(document, dict) else None
    if not isinstance(rules, list):
        return {}
    return {str(r["id"]): r for r in rules if isinstance(r, dict) and "id" in r}


def _fields(old: dict[str, object], new: dict[str, object]) -> tuple[FieldChange, ...]:
    keys = list(old) + [key for key in new if key not in old]
    return tuple(FieldChange(key, old.get(key), new.get(key)) for key in keys if old.get(key) != new.get(key))


def _lists(old: dict[str, object], new: dict[str, object]) -> tuple[ListChange, ...]:
    changes = []
    for name in list(old) + [name for name in new if name not in old]:
        a, b = _entries(old.get(name)), _entries(new.get(name))
        if a != b:
            changes.append(ListChange(name, len(b - a), len(a - b)))
    return tuple(changes)


def _entries(value: object) -> set[str]:
    return {str(v) for v in value} if isinstance(value, list) else set()


def _field_data(f: FieldChange) -> JsonObject:
    return {"field": f.field, "old": f.old, "new": f.new}


def _show(value: object) -> str:
    if value is None:
        return "(absent)"
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
