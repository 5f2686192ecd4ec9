"""The policy document: how a human writes a policy (YAML or JSON) and how it is validated.

`load_document` reads text into plain data, `parse_document` validates that data into frozen
dataclasses (the rules of `shared.policy.rules`) and raises `PolicyError(path, reason)` naming
the bad field, e.g. `rules[3].max_amount`. Unknown keys are refused: a misspelt `max_amout`
must not silently drop a limit. Versions are assigned by the store, never written here.
See `deploy/policy.example.yaml` for a commented sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

import yaml

from shared.errors import PolicyError
from shared.policy.addresses import normalize_address, normalize_symbol
from shared.policy.model import Action, DecisionRequest, ExpectedOrder, Operation
from shared.policy.requests import parse_action, parse_decision_request, parse_example_order
from shared.policy.rules import (
    ANY,
    AmountLimit,
    ContractRule,
    DepositRiskRule,
    DestinationRule,
    ExpectedOrderRule,
    Rule,
    Scope,
    SpeedUpRule,
    TssRule,
    WalletRule,
)
from shared.policy.values import (
    as_decimal,
    as_int,
    as_mapping,
    as_str,
    as_str_list,
    check_keys,
    optional,
)

MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
_TOP_KEYS = frozenset({"name", "description", "defaults", "lists", "rules", "examples"})
_SCOPE_KEYS = frozenset({"provider", "operation", "chain", "asset"})
_COMMON_RULE_KEYS = frozenset({"id", "kind", "description", "match"})


@dataclass(frozen=True, slots=True)
class Example:
    """A request the document's author expects to be answered `expect` (publishing checks it)."""

    name: str
    request: DecisionRequest
    order: ExpectedOrder | None
    now: float | None
    expect: Action
    reasons: frozenset[str]  # reason codes that must appear in the decision


@dataclass(frozen=True, slots=True)
class PolicyDocument:
    """A validated policy document, before indexing."""

    name: str
    description: str
    defaults: tuple[tuple[str, Action], ...]
    rules: tuple[Rule, ...]
    examples: tuple[Example, ...]


# -- text -> data ----------------------------------------------------------------------------


class _Loader(yaml.CSafeLoader):
    """Safe YAML that keeps numbers exact: floats become Decimal, and hex or octal-looking
    integers stay strings, so an unquoted `0xAbC...` address is not turned into an int."""


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = loader.construct_scalar(node).replace("_", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return text  # .inf/.nan spellings: refused later as "not a decimal"


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    text = loader.construct_scalar(node)
    digits = text.lstrip("+-")
    if digits.isascii() and digits.isdigit() and (digits == "0" or not digits.startswith("0")):
        return int(text)
    return text


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def load_document(text: str | bytes) -> object:
    """Parse YAML or JSON text into plain data (Decimals for numbers with a point)."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise PolicyError("$", f"document larger than {MAX_DOCUMENT_BYTES} bytes")
    try:
        if text.lstrip()[:1] in ("{", b"{"):
            # JSON (the stored form, and large generated lists): the json module is ~10x faster
            # than the YAML parser; numbers keep their exact decimal value as with YAML.
            return json.loads(text, parse_float=Decimal, parse_constant=Decimal)
        # Aliases are refused: they let a few lines expand into an exponential walk.
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=yaml.CSafeLoader)):
            raise PolicyError("$", "YAML aliases (*name) are not allowed in policy documents")
        return yaml.load(text, Loader=_Loader)  # noqa: S506 -- _Loader is a SafeLoader
    except yaml.YAMLError as e:
        raise PolicyError("$", f"not YAML or JSON: {str(e)[:300]}") from None
    except json.JSONDecodeError as e:
        raise PolicyError("$", f"not JSON: {e}") from None
    except (ValueError, TypeError, RecursionError) as e:
        raise PolicyError("$", f"unreadable document: {type(e).__name__}") from None


def canonical_json(data: object) -> str:
    """The stored form of document data: JSON with sorted keys, Decimals as strings."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=_json_default, ensure_ascii=False)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    raise PolicyError("$", f"a value of type {type(value).__name__} cannot be stored")


# -- data -> document ------------------------------------------------------------------------


def parse_document(data: object) -> PolicyDocument:
    """Validate document data; raises PolicyError naming the path of the first bad field."""
    top = as_mapping(data, "$")
    check_keys(top, "", allowed=_TOP_KEYS, required=frozenset({"rules"}))
    lists = _parse_lists(top.get("lists"))
    rules = tuple(_parse_rule(item, f"rules[{i}]", lists) for i, item in enumerate(_items(top["rules"], "rules")))
    _check_unique_ids(rules)
    examples = _items(top.get("examples"), "examples")
    return PolicyDocument(
        name=optional(top, "name", "", as_str, ""),
        description=optional(top, "description", "", as_str, ""),
        defaults=_parse_defaults(top.get("defaults")),
        rules=rules,
        examples=tuple(_parse_example(item, f"examples[{i}]") for i, item in enumerate(examples)),
    )


def _items(value: object, path: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise PolicyError(path, "expected a list")
    return value


def _check_unique_ids(rules: tuple[Rule, ...]) -> None:
    seen: set[str] = set()
    for i, rule in enumerate(rules):
        if rule.id in seen:
            raise PolicyError(f"rules[{i}].id", f"duplicate rule id {rule.id!r}")
        seen.add(rule.id)


def _parse_defaults(value: object) -> tuple[tuple[str, Action], ...]:
    if value is None:
        return ()
    mapping = as_mapping(value, "defaults")
    return tuple((_provider(key, f"defaults.{key}"), parse_action(v, f"defaults.{key}")) for key, v in mapping.items())


def _provider(value: str, path: str) -> str:
    name = value.strip().lower()
    if not name or not (name == ANY or name.replace("_", "").isalnum()):
        raise PolicyError(path, "a provider name is letters, digits and _ (or *)")
    return name


def _parse_lists(value: object) -> dict[str, frozenset[str]]:
    if value is None:
        return {}
    mapping = as_mapping(value, "lists")
    return {name: frozenset(map(normalize_address, as_str_list(v, f"lists.{name}"))) for name, v in mapping.items()}


def _parse_scope(value: object, path: str, *, transfer: bool) -> Scope:
    if value is None:
        return Scope()
    mapping = as_mapping(value, path)
    check_keys(mapping, path, allowed=_SCOPE_KEYS if transfer else frozenset({"provider", "operation"}))

    def dimension(key: str, normal: Callable[[str, str], str]) -> tuple[str, ...]:
        if key not in mapping:
            return (ANY,)
        raw = mapping[key]
        values = [raw] if isinstance(raw, str) else as_str_list(raw, f"{path}.{key}")
        if not values:
            raise PolicyError(f"{path}.{key}", "empty: leave the key out to match anything")
        normalised = tuple(dict.fromkeys(normal(v, f"{path}.{key}[{i}]") for i, v in enumerate(values)))
        return (ANY,) if ANY in normalised else normalised

    return Scope(
        providers=dimension("provider", _provider),
        operations=dimension("operation", _operation),
        chains=dimension("chain", lambda v, p: normalize_symbol(v) or _empty(p)),
        assets=dimension("asset", lambda v, p: normalize_symbol(v) or _empty(p)),
    )


def _empty(path: str) -> str:
    raise PolicyError(path, "empty value")


def _operation(value: str, path: str) -> str:
    name = value.strip().lower()
    if name != ANY and name not in Operation._value2member_map_:
        raise PolicyError(path, f"unknown operation {value!r}; one of {', '.join(o.value for o in Operation)}")
    return name


# -- rules -----------------------------------------------------------------------------------


def _parse_rule(item: object, path: str, lists: Mapping[str, frozenset[str]]) -> Rule:
    mapping = as_mapping(item, path)
    kind = as_str(mapping.get("kind"), f"{path}.kind")
    parser = _RULE_PARSERS.get(kind)
    if parser is None:
        raise PolicyError(f"{path}.kind", f"unknown rule kind {kind!r}; one of {', '.join(sorted(_RULE_PARSERS))}")
    fields, transfer = _RULE_FIELDS[kind]
    check_keys(mapping, path, allowed=_COMMON_RULE_KEYS | fields, required=frozenset({"id", "kind"}))
    rule_id = as_str(mapping["id"], f"{path}.id").strip()
    if not rule_id:
        raise PolicyError(f"{path}.id", "empty rule id")
    optional(mapping, "description", "", as_str, path)
    scope = _parse_scope(mapping.get("match"), f"{path}.match", transfer=transfer)
    return parser(_Fields(mapping, path, lists), rule_id, scope)


class _Fields:
    """Typed access to one rule's fields, each error naming `rules[i].<field>`."""

    def __init__(self, mapping: Mapping[str, object], path: str, lists: Mapping[str, frozenset[str]]) -> None:
        self.mapping, self.path, self.lists = mapping, path, lists

    def at(self, key: str) -> str:
        return f"{self.path}.{key}"

    def require_one(self, *keys: str) -> None:
        if not any(key in self.mapping for key in keys):
            raise PolicyError(self.path, f"needs at least one of: {', '.join(keys)}")

    def addresses(self, key: str, lists_key: str | None = None) -> frozenset[str] | None:
        """The addresses listed under `key` plus those of the named lists under `lists_key`."""
        if key not in self.mapping and (lists_key is None or lists_key not in self.mapping):
            return None
        found = set(map(normalize_address, as_str_list(self.mapping.get(key, []), self.at(key))))
        if lists_key is None:
            return frozenset(found)
        names = as_str_list(self.mapping.get(lists_key, []), self.at(lists_key))
        for i, name in enumerate(names):
            if name not in self.lists:
                raise PolicyError(f"{self.at(lists_key)}[{i}]", f"no list named {name!r} under `lists`")
        if len(names) == 1 and not found:
            return self.lists[names[0]]  # share the compiled list instead of copying 100k entries
        return frozenset(found.union(*(self.lists[name] for name in names)))

    def symbols(self, key: str) -> frozenset[str] | None:
        if key not in self.mapping:
            return None
        return frozenset(normalize_symbol(v) for v in as_str_list(self.mapping[key], self.at(key)))

    def plain(self, key: str) -> frozenset[str] | None:
        if key not in self.mapping:
            return None
        return frozenset(v.strip() for v in as_str_list(self.mapping[key], self.at(key)))

    def integer(self, key: str, *, low: int, high: int) -> int | None:
        if key not in self.mapping:
            return None
        return as_int(self.mapping[key], self.at(key), low=low, high=high)


def _amount_limit(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    max_amount = as_decimal(f.mapping.get("max_amount"), f.at("max_amount"))
    if max_amount < 0:
        raise PolicyError(f.at("max_amount"), "must not be negative")
    return AmountLimit(rule_id, scope, max_amount)


def _destinations(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("allow", "allow_lists", "deny", "deny_lists")
    deny = f.addresses("deny", "deny_lists") or _NONE
    return DestinationRule(rule_id, scope, f.addresses("allow", "allow_lists"), deny)


def _contracts(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("allow", "allow_lists", "unlimited_approval")
    return ContractRule(rule_id, scope, f.addresses("allow", "allow_lists"), f.addresses("unlimited_approval") or _NONE)


def _tss(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("node_ids", "min_threshold", "curves", "signature_types", "protocols")
    return TssRule(
        rule_id,
        scope,
        node_ids=f.plain("node_ids"),
        min_threshold=f.integer("min_threshold", low=1, high=1000),
        curves=f.symbols("curves"),
        signature_types=f.symbols("signature_types"),
        protocols=f.symbols("protocols"),
    )


def _wallets(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("allow", "frozen")
    return WalletRule(rule_id, scope, f.plain("allow"), f.plain("frozen") or _NONE)


def _speed_up(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("max_rounds")
    return SpeedUpRule(rule_id, scope, f.integer("max_rounds", low=0, high=1000) or 0)


def _expected_order(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    return ExpectedOrderRule(rule_id, scope)


def _deposit_risk(f: _Fields, rule_id: str, scope: Scope) -> Rule:
    f.require_one("max_risk_level")
    return DepositRiskRule(rule_id, scope, f.integer("max_risk_level", low=0, high=100) or 0)


_NONE: frozenset[str] = frozenset()
_RULE_PARSERS: dict[str, Callable[[_Fields, str, Scope], Rule]] = {
    "amount_limit": _amount_limit,
    "destinations": _destinations,
    "contracts": _contracts,
    "tss": _tss,
    "wallets": _wallets,
    "speed_up": _speed_up,
    "expected_order": _expected_order,
    "deposit_risk": _deposit_risk,
}
# kind -> (its own keys, whether it is scoped by chain/asset too)
_RULE_FIELDS: dict[str, tuple[frozenset[str], bool]] = {
    "amount_limit": (frozenset({"max_amount"}), True),
    "destinations": (frozenset({"allow", "allow_lists", "deny", "deny_lists"}), True),
    "contracts": (frozenset({"allow", "allow_lists", "unlimited_approval"}), True),
    "tss": (frozenset({"node_ids", "min_threshold", "curves", "signature_types", "protocols"}), False),
    "wallets": (frozenset({"allow", "frozen"}), False),
    "speed_up": (frozenset({"max_rounds"}), False),
    "expected_order": (frozenset(), False),
    "deposit_risk": (frozenset({"max_risk_level"}), False),
}


# -- examples --------------------------------------------------------------------------------


def _parse_example(item: object, path: str) -> Example:
    mapping = as_mapping(item, path)
    check_keys(
        mapping, path, allowed=frozenset({"name", "request", "order", "now", "expect", "reasons"}),
        required=frozenset({"request", "expect"}),
    )  # fmt: skip
    request = parse_decision_request(mapping["request"], f"{path}.request", default_id=path)
    order_data = mapping.get("order")
    now = optional(mapping, "now", None, as_decimal, path)
    return Example(
        name=optional(mapping, "name", path, as_str, path) or path,
        request=request,
        order=None if order_data is None else parse_example_order(order_data, f"{path}.order", request),
        now=None if now is None else float(now),
        expect=parse_action(mapping["expect"], f"{path}.expect"),
        reasons=frozenset(as_str_list(mapping.get("reasons", []), f"{path}.reasons")),
    )
