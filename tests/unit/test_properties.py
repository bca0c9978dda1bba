"""Property-based tests (hypothesis): quantities, label selectors, the policy model, hostile Deployments.

Each property states a law that must hold for every generated input; hypothesis shrinks a failure
to a minimal example. Example counts are bounded so the whole file stays well under 20 seconds.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from readiness_operator.engine import compile_policy, evaluate, matches
from readiness_operator.model import CATEGORIES, CHECK_IDS, LabelSelector, ReadinessPolicy, ReadinessPolicySpec
from readiness_operator.quantity import QUANTITY_PATTERN, format_quantity, parse_quantity
from readiness_operator.selectors import label_selector_matches
from readiness_operator.shape import MalformedObject
from readiness_operator.world import InMemoryView, SloMeasurement, World, Worlds, namespace_of

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SLOW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --------------------------------------------------------------------------------------------------
# Quantities
# --------------------------------------------------------------------------------------------------

_BINARY_POWER = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_EXP = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# Up to 10**9: 10**9 Ei still has < 28 significant digits, the default Decimal precision (larger values
# are rounded by parse_quantity; Kubernetes itself caps quantities far below that).
numbers = st.integers(min_value=0, max_value=10**9)
#: Plain decimal text: "12", "0.5", ".25", "3.", with an optional sign.
decimal_text = st.builds(
    lambda sign, whole, frac, form: (
        sign + {"int": whole, "frac": f"{whole}.{frac}", "dot": f".{frac or '0'}", "trail": f"{whole}."}[form]
    ),
    st.sampled_from(["", "+", "-"]),
    st.integers(min_value=0, max_value=10**9).map(str),
    st.integers(min_value=0, max_value=10**6).map(str),
    st.sampled_from(["int", "frac", "dot", "trail"]),
)


@FAST
@given(numbers)
def test_quantity_integer_equals_its_thousand_millis(n: int) -> None:
    assert parse_quantity(str(n)) == n
    assert parse_quantity(f"{n * 1000}m") == parse_quantity(str(n))
    assert parse_quantity(f"{n}m") * 1000 == n
    assert parse_quantity(n) == n


@FAST
@given(numbers, st.sampled_from(sorted(_BINARY_POWER)))
def test_quantity_binary_suffixes_scale_by_1024(n: int, suffix: str) -> None:
    value = parse_quantity(f"{n}{suffix}")
    assert value == n * 1024 ** _BINARY_POWER[suffix]
    if suffix != "Ei":
        bigger = next(s for s, p in _BINARY_POWER.items() if p == _BINARY_POWER[suffix] + 1)
        assert parse_quantity(f"{n}{bigger}") == value * 1024


@FAST
@given(decimal_text, st.sampled_from(sorted(_DECIMAL_EXP)))
def test_quantity_decimal_suffix_equals_exponent_form(number: str, suffix: str) -> None:
    exponent = _DECIMAL_EXP[suffix]
    expected = Decimal(number if not number.endswith(".") else number[:-1] or "0").scaleb(exponent)
    assert parse_quantity(f"{number}{suffix}") == expected
    assert parse_quantity(f"{number}e{exponent}") == expected
    assert parse_quantity(f"{number}E{exponent:+d}") == expected


@FAST
@given(st.integers(min_value=0, max_value=10**6), st.integers(min_value=-20, max_value=20))
def test_quantity_exponents(n: int, exp: int) -> None:
    assert parse_quantity(f"{n}e{exp}") == Decimal(n).scaleb(exp)
    assert parse_quantity("1e3") == parse_quantity("1000") == parse_quantity("1k") == 1000


@FAST
@given(decimal_text, st.sampled_from(["", "m", "k", "M", "Ki", "Mi", "Gi", "e3", "e-3"]), st.booleans())
def test_quantity_format_round_trips(number: str, suffix: str, binary: bool) -> None:
    value = parse_quantity(number + suffix)
    shown = format_quantity(value, binary=binary)
    assert parse_quantity(shown) == value, shown


@FAST
@given(st.sampled_from(["", "m", "k", "Mi", "Gi", "e2"]), st.text(alphabet=" \t\n", max_size=3))
def test_quantity_surrounding_whitespace_is_ignored(suffix: str, space: str) -> None:
    assert parse_quantity(f"{space}7{suffix}{space}") == parse_quantity(f"7{suffix}")


_QUANTITY_RE = re.compile(QUANTITY_PATTERN)


@FAST
@given(
    st.one_of(
        st.text(max_size=12),
        st.text(alphabet="0123456789.+-eEkKMGTPmunai ", max_size=8),
        st.from_regex(r"\A[0-9]{1,4}(\.[0-9]{0,3})?[A-Za-z]{1,3}\Z"),
    )
)
def test_quantity_junk_raises_value_error_with_a_message(text: str) -> None:
    try:
        value = parse_quantity(text)
    except ValueError as exc:
        assert "invalid quantity" in str(exc) and repr(text) in str(exc)
        return
    assert isinstance(value, Decimal)
    assert _QUANTITY_RE.fullmatch(text.strip()), f"{text!r} parsed but the CRD pattern rejects it"


@FAST
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.lists(st.integers(), max_size=2),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    )
)
def test_quantity_non_text_raises_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Label selectors
# --------------------------------------------------------------------------------------------------

_KEYS = ["app", "tier", "team", "env", "example.com/owner"]
_VALUES = ["web", "api", "prod", "dev", ""]
label_dicts = st.dictionaries(st.sampled_from(_KEYS), st.sampled_from(_VALUES), max_size=len(_KEYS))
requirements = st.one_of(
    st.fixed_dictionaries(
        {
            "key": st.sampled_from(_KEYS),
            "operator": st.sampled_from(["In", "NotIn"]),
            "values": st.lists(st.sampled_from(_VALUES), min_size=1, max_size=3),
        }
    ),
    st.fixed_dictionaries({"key": st.sampled_from(_KEYS), "operator": st.sampled_from(["Exists", "DoesNotExist"])}),
)
selectors = st.fixed_dictionaries(
    {},
    optional={
        "matchLabels": label_dicts,
        "matchExpressions": st.lists(requirements, max_size=3),
    },
)


def reference_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics, written independently as set logic."""
    if not selector:
        return True
    items = set(labels.items())
    if not set((selector.get("matchLabels") or {}).items()) <= items:
        return False
    for req in selector.get("matchExpressions") or []:
        key, op, values = req["key"], req["operator"], set(req.get("values") or [])
        have = {v for k, v in items if k == key}
        ok = {
            "In": bool(have & values),
            "NotIn": not (have & values),
            "Exists": bool(have),
            "DoesNotExist": not have,
        }.get(op, False)
        if not ok:
            return False
    return True


@FAST
@given(selectors, label_dicts)
def test_selector_agrees_with_reference(selector: dict[str, Any], labels: dict[str, str]) -> None:
    assert label_selector_matches(selector, labels) == reference_matches(selector, labels)


@FAST
@given(label_dicts, st.data())
def test_match_labels_subset_semantics(labels: dict[str, str], data: st.DataObject) -> None:
    subset = data.draw(st.sets(st.sampled_from(sorted(labels)), max_size=len(labels))) if labels else set()
    assert label_selector_matches({"matchLabels": {k: labels[k] for k in subset}}, labels)
    missing = [k for k in _KEYS if k not in labels]
    if missing:
        assert not label_selector_matches({"matchLabels": {missing[0]: "web"}}, labels)
    if labels:
        key = sorted(labels)[0]
        assert not label_selector_matches({"matchLabels": {key: labels[key] + "-other"}}, labels)


@FAST
@given(label_dicts)
def test_empty_selector_matches_everything(labels: dict[str, str]) -> None:
    assert label_selector_matches(None, labels)
    assert label_selector_matches({}, labels)
    assert label_selector_matches({"matchLabels": {}, "matchExpressions": []}, labels)


@FAST
@given(selectors, label_dicts)
def test_selector_model_round_trip_keeps_semantics(selector: dict[str, Any], labels: dict[str, str]) -> None:
    model = LabelSelector.model_validate(selector)
    assert label_selector_matches(model.as_dict(), labels) == reference_matches(selector, labels)


@FAST
@given(st.sampled_from(_KEYS), st.sampled_from(["Gt", "Lt", "in", "", None]), label_dicts)
def test_unknown_operators_never_match(key: str, op: str | None, labels: dict[str, str]) -> None:
    assert not label_selector_matches({"matchExpressions": [{"key": key, "operator": op}]}, labels)


# --------------------------------------------------------------------------------------------------
# The policy model
# --------------------------------------------------------------------------------------------------


def _sometimes_bad(good: st.SearchStrategy[Any], *bad: Any) -> st.SearchStrategy[Any]:
    """Mostly valid values, sometimes a wrong type or an out-of-range one."""
    wrong = st.sampled_from(list(bad) or [None])
    return st.sampled_from([False] * 7 + [True]).flatmap(lambda is_bad: wrong if is_bad else good)


quantities = st.sampled_from(["100m", "0.5", "1", "512Mi", "1Gi", "0.5Gi", "1e3", "2", "500M", "250m"])
bad_quantities = ("abc", "1GB", "", "-", [1], {"a": 1})
bounds = st.fixed_dictionaries(
    {},
    optional={
        "required": _sometimes_bad(st.booleans(), "maybe"),
        "min": _sometimes_bad(quantities, *bad_quantities),
        "max": _sometimes_bad(quantities, *bad_quantities),
    },
)
pair = st.fixed_dictionaries({}, optional={"cpu": bounds, "memory": bounds})
severity = _sometimes_bad(st.sampled_from(["critical", "warning", "info"]), "fatal", 3)
small_int = st.integers(min_value=1, max_value=50)


def group(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"severity": severity, **fields})


rules = st.fixed_dictionaries(
    {},
    optional={
        "probes": group(liveness=st.booleans(), readiness=st.booleans(), startup=st.booleans()),
        "resources": group(requests=pair, limits=pair),
        "replicas": group(min=_sometimes_bad(small_int, 0, -1, 10**6, "3")),
        "podDisruptionBudget": group(required=st.booleans(), minAvailable=_sometimes_bad(small_int, -1, "two")),
        "horizontalPodAutoscaler": group(
            required=st.booleans(),
            minReplicas=_sometimes_bad(small_int, 0),
            maxReplicas=_sometimes_bad(small_int, 0),
            metrics=st.lists(st.sampled_from(["cpu", "memory", "gpu"]), max_size=3),
            targetUtilization=st.fixed_dictionaries(
                {}, optional={"cpu": _sometimes_bad(st.integers(1, 100), 0), "memory": st.integers(1, 100)}
            ),
        ),
        "securityContext": group(
            runAsNonRoot=st.booleans(),
            runAsUserMin=_sometimes_bad(st.integers(0, 100000), -5),
            readOnlyRootFilesystem=st.booleans(),
            dropAllCapabilities=st.booleans(),
            seccompRuntimeDefault=st.booleans(),
            noPrivilegeEscalation=st.booleans(),
            noPrivileged=st.booleans(),
        ),
        "antiAffinity": group(required=st.booleans(), topologyKey=st.sampled_from(["kubernetes.io/hostname", "zone"])),
        "images": group(forbidLatest=st.booleans(), requireDigest=st.booleans()),
        "rollingUpdate": group(
            required=st.booleans(), maxUnavailable=_sometimes_bad(st.sampled_from([0, 1, "25%", "0%"]), "x", -1, "25")
        ),
        "gracefulShutdown": group(
            minTerminationGracePeriodSeconds=_sometimes_bad(st.integers(0, 300), -1),
            requirePreStopHook=st.booleans(),
        ),
    },
)
slo_names = _sometimes_bad(st.sampled_from(["availability", "latency-p99", "errors"]), "Bad_Name", "")
slos = st.lists(
    st.fixed_dictionaries(
        {
            "name": slo_names,
            "query": _sometimes_bad(
                st.sampled_from(
                    [
                        'sum(rate(x{namespace="{{namespace}}", deployment="{{name}}"}[5m]))',
                        "up{app='{{labels.app}}'}",
                        "vector(1)",
                    ]
                ),
                "{{nope}}",
                "",
            ),
            "comparison": _sometimes_bad(st.sampled_from(["<", "<=", ">", ">="]), "==", "lt"),
            "threshold": _sometimes_bad(st.floats(-10, 10, allow_nan=False), "high"),
        },
        optional={
            "warning": st.floats(-10, 10, allow_nan=False),
            "critical": st.floats(-10, 10, allow_nan=False),
            "window": _sometimes_bad(st.sampled_from(["5m", "1h30m", "30d"]), "5 minutes"),
            "onBreach": _sometimes_bad(st.sampled_from(["Report", "Warn", "Block"]), "Deny"),
            "severity": severity,
        },
    ),
    max_size=3,
    unique_by=lambda slo: str(slo["name"]),
)
check_refs = _sometimes_bad(st.sampled_from([*CHECK_IDS, "*", "slo:availability"]), "slo:missing", "no-such-check")
exemptions = st.lists(
    st.fixed_dictionaries(
        {
            "checks": _sometimes_bad(st.lists(check_refs, min_size=1, max_size=3), []),
            "reason": _sometimes_bad(st.sampled_from(["ticket-1", "migration"]), ""),
        },
        optional={
            "namespaces": st.lists(st.sampled_from(["a", "b"]), max_size=2),
            "names": st.lists(st.sampled_from(["web-*", "api"]), max_size=2),
            "selector": selectors,
            "expires": st.one_of(
                st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
                st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
                st.sampled_from(["2030-01-01T00:00:00Z", "tomorrow"]),
            ),
        },
    ),
    max_size=3,
)
specs = st.fixed_dictionaries(
    {},
    optional={
        "mode": _sometimes_bad(st.sampled_from(["Enforce", "Warn", "Audit"]), "Block", None),
        "match": st.fixed_dictionaries(
            {},
            optional={
                "namespaces": st.lists(st.sampled_from(["a", "b", "team-1"]), max_size=3),
                "excludeNamespaces": st.lists(st.sampled_from(["kube-system", "b"]), max_size=2),
                "namespaceSelector": selectors,
                "selector": _sometimes_bad(selectors, {"matchExpressions": [{"key": "a", "operator": "In"}]}),
            },
        ),
        "rules": rules,
        "weights": st.dictionaries(
            st.sampled_from([*CHECK_IDS[:5], *CATEGORIES[:3], "slo:availability", "bogus"]),
            _sometimes_bad(st.integers(0, 1000), -1, 5000, "x"),
            max_size=3,
        ),
        "slos": slos,
        "exemptions": exemptions,
        "admission": st.fixed_dictionaries(
            {}, optional={"judgeUnchangedUpdates": st.booleans(), "overrideUsers": st.lists(st.just("alice"))}
        ),
    },
)
# One in ten also carries a field the schema does not know (must be rejected, never ignored).
specs = st.tuples(specs, st.sampled_from([False] * 9 + [True])).map(lambda t: {**t[0], "surprise": 1} if t[1] else t[0])


@SLOW
@given(specs)
def test_policy_spec_validates_or_raises_validation_error(raw: dict[str, Any]) -> None:
    try:
        spec = ReadinessPolicySpec.model_validate(raw)
    except ValidationError:
        return
    # A valid spec survives the wire: Python dump, JSON dump (what the API server stores), and back.
    again = ReadinessPolicySpec.model_validate(spec.model_dump(by_alias=True))
    assert again == spec
    assert ReadinessPolicySpec.model_validate(spec.model_dump(by_alias=True, mode="json")) == spec
    assert ReadinessPolicySpec.model_validate(spec.model_dump(by_alias=True, exclude_defaults=True)) == spec
    compile_policy(again)  # every valid spec compiles


@SLOW
@given(specs)
def test_whole_policy_object_validates_or_raises_validation_error(raw: dict[str, Any]) -> None:
    doc = {"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy", "metadata": {"name": "p"}, "spec": raw}
    try:
        policy = ReadinessPolicy.model_validate(doc)
    except ValidationError:
        return
    assert ReadinessPolicy.model_validate(policy.model_dump(by_alias=True, mode="json")) == policy


@FAST
@given(
    st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5)),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.dictionaries(st.sampled_from(["rules", "mode", "match", "slos", "x"]), inner, max_size=3),
        ),
        max_leaves=8,
    )
)
def test_policy_spec_from_arbitrary_json_never_raises_anything_else(raw: Any) -> None:
    with contextlib.suppress(ValidationError):
        ReadinessPolicySpec.model_validate(raw)


# --------------------------------------------------------------------------------------------------
# The engine on hostile Deployments
# --------------------------------------------------------------------------------------------------

_EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "policies"
_ALL_RULES = ReadinessPolicySpec.model_validate(
    {
        "rules": {
            "probes": {"startup": True},
            "resources": {
                "requests": {"cpu": {"min": "100m", "max": "4"}, "memory": {"min": "64Mi", "max": "8Gi"}},
                "limits": {"cpu": {"max": "8"}, "memory": {"max": "16Gi"}},
            },
            "replicas": {"min": 2},
            "podDisruptionBudget": {"minAvailable": 1},
            "horizontalPodAutoscaler": {
                "minReplicas": 2,
                "maxReplicas": 5,
                "metrics": ["cpu", "memory"],
                "targetUtilization": {"cpu": 80, "memory": 80},
            },
            "securityContext": {"runAsUserMin": 1000},
            "antiAffinity": {},
            "images": {"requireDigest": True},
            "rollingUpdate": {"maxUnavailable": "25%"},
            "gracefulShutdown": {"minTerminationGracePeriodSeconds": 30, "requirePreStopHook": True},
        },
        "slos": [{"name": "availability", "query": "vector(1)", "comparison": ">=", "threshold": 0.99}],
        "exemptions": [{"checks": ["pre-stop-hook"], "names": ["svc-*"], "reason": "legacy"}],
    }
)
POLICIES = [
    _ALL_RULES,
    *(
        ReadinessPolicy.model_validate(yaml.safe_load((_EXAMPLES / f"{name}.yaml").read_text())).spec
        for name in ("production", "hardened", "baseline")
    ),
]

# Hostile but shaped as the API server guarantees (objects are objects, lists are lists, strings are
# strings): missing sections, nulls, empty lists, huge names, odd or invalid quantities and
# int-or-strings, negative numbers, unknown enum values. The operator only ever sees such objects.
weird_quantities = st.sampled_from(
    ["0.5Gi", "500m", "1e3", "1E3", "12e-3", ".5", "1.", "+1", "-1", "0", "1Gb", "abc", "", " 2Gi ", "1e999", "Mi"]
)
huge = st.sampled_from(["x" * 253, "n" * 100_000, "ünïcødé-☃", ""])
texts = st.one_of(st.text(max_size=8), huge)


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


def obj(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """An object with any subset of the fields, each possibly null."""
    return st.fixed_dictionaries({}, optional={k: nullable(v) for k, v in fields.items()})


int_or_string = st.one_of(st.integers(-5, 20), st.sampled_from(["25%", "0%", "150%", "x%", "%", "1", ""]))
quantity_map = st.dictionaries(st.sampled_from(["cpu", "memory", "ephemeral-storage"]), nullable(weird_quantities))
security = obj(
    runAsNonRoot=st.booleans(),
    runAsUser=st.integers(-1, 2**40),
    readOnlyRootFilesystem=st.booleans(),
    allowPrivilegeEscalation=st.booleans(),
    privileged=st.booleans(),
    capabilities=obj(drop=st.lists(st.sampled_from(["ALL", "all", "NET_RAW", ""])), add=st.lists(texts, max_size=2)),
    seccompProfile=obj(type=st.sampled_from(["RuntimeDefault", "Localhost", "Unconfined", ""])),
)
probe = obj(httpGet=obj(port=int_or_string, path=texts), tcpSocket=obj(port=int_or_string), periodSeconds=st.integers(-1, 10))
container = obj(
    name=texts,
    image=st.sampled_from(["nginx", "nginx:latest", "r.io/a/b:1.2", "a@sha256:" + "0" * 64, ":", "@", "", "x" * 5000]),
    resources=obj(requests=quantity_map, limits=quantity_map),
    securityContext=security,
    livenessProbe=probe,
    readinessProbe=probe,
    startupProbe=probe,
    lifecycle=obj(preStop=obj(exec=obj(command=st.lists(texts, max_size=2)))),
)
labels = st.dictionaries(
    st.sampled_from(["app", "tier", "readiness.dev/profile", "x" * 300]), st.sampled_from(["web", "production", "hardened", ""])
)
selector_obj = obj(matchLabels=labels, matchExpressions=st.lists(requirements, max_size=2))
affinity_term = obj(topologyKey=st.sampled_from(["kubernetes.io/hostname", "zone", ""]), labelSelector=selector_obj)
pod_spec = obj(
    containers=st.lists(container, max_size=3),
    initContainers=st.lists(container, max_size=2),
    securityContext=security,
    affinity=obj(
        podAntiAffinity=obj(
            requiredDuringSchedulingIgnoredDuringExecution=st.lists(affinity_term, max_size=2),
            preferredDuringSchedulingIgnoredDuringExecution=st.lists(
                obj(weight=st.integers(0, 100), podAffinityTerm=affinity_term), max_size=2
            ),
        )
    ),
    topologySpreadConstraints=st.lists(
        obj(maxSkew=st.integers(0, 3), topologyKey=st.sampled_from(["kubernetes.io/hostname", ""]), labelSelector=selector_obj),
        max_size=2,
    ),
    terminationGracePeriodSeconds=st.integers(-5, 10**12),
)
deployments = st.fixed_dictionaries(
    {"apiVersion": st.just("apps/v1"), "kind": st.just("Deployment")},
    optional={
        "metadata": nullable(
            obj(
                name=st.one_of(st.sampled_from(["web", "svc-1"]), huge),
                namespace=st.sampled_from(["default", "team-1", ""]),
                labels=labels,
            )
        ),
        "spec": nullable(
            obj(
                replicas=st.integers(-1, 2**31),
                selector=selector_obj,
                strategy=obj(
                    type=st.sampled_from(["RollingUpdate", "Recreate", "BlueGreen", ""]),
                    rollingUpdate=obj(maxUnavailable=int_or_string, maxSurge=int_or_string),
                ),
                template=obj(metadata=obj(labels=labels), spec=pod_spec),
            )
        ),
    },
)
pdbs = st.fixed_dictionaries(
    {"kind": st.just("PodDisruptionBudget"), "metadata": st.just({"name": "pdb", "namespace": "default"})},
    optional={"spec": nullable(obj(selector=selector_obj, minAvailable=int_or_string, maxUnavailable=int_or_string))},
)
metric = obj(
    type=st.sampled_from(["Resource", "Pods", ""]),
    resource=obj(
        name=st.sampled_from(["cpu", "memory", "gpu"]),
        target=obj(type=st.sampled_from(["Utilization", "AverageValue"]), averageUtilization=st.integers(-1, 500)),
    ),
)
hpas = st.fixed_dictionaries(
    {"kind": st.just("HorizontalPodAutoscaler"), "metadata": st.just({"name": "hpa", "namespace": "default"})},
    optional={
        "spec": nullable(
            obj(
                scaleTargetRef=obj(
                    apiVersion=st.sampled_from(["apps/v1", "v1", ""]),
                    kind=st.just("Deployment"),
                    name=st.sampled_from(["web", ""]),
                ),
                minReplicas=st.integers(-1, 5),
                maxReplicas=st.integers(-1, 20),
                metrics=st.lists(metric, max_size=3),
            )
        )
    },
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
slo_values = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(deployments, st.lists(pdbs, max_size=2), st.lists(hpas, max_size=2), st.sampled_from(POLICIES), slo_values)
def test_engine_returns_a_verdict_for_hostile_deployments(
    dep: dict[str, Any],
    pdb_list: list[dict[str, Any]],
    hpa_list: list[dict[str, Any]],
    spec: ReadinessPolicySpec,
    slo_value: float | None,
) -> None:
    world = World(
        pdbs=pdb_list,
        hpas=hpa_list,
        slo_measurements={"availability": SloMeasurement(slo_value, NOW - timedelta(seconds=5))},
        now=NOW,
    )
    matches(spec, dep, {})
    verdict = evaluate(spec, dep, world)
    assert [f.check for f in verdict.findings] == compile_policy(spec).check_ids
    assert 0 <= verdict.score <= 100
    blocking = any(f.status == "fail" and str(f.severity) != "info" for f in verdict.findings)
    assert verdict.compliant == (not blocking)
    assert all(isinstance(f.message, str) and f.message for f in verdict.findings)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(deployments, min_size=1, max_size=4), st.lists(pdbs, max_size=2), st.lists(hpas, max_size=2),
       st.sampled_from(POLICIES), st.integers(1, 6))
def test_shared_subtrees_give_the_same_objects_and_verdicts_and_are_never_edited(
    deps: list[dict[str, Any]], pdb_list: list[dict[str, Any]], hpa_list: list[dict[str, Any]],
    spec: ReadinessPolicySpec, limit: int,
) -> None:
    """The reader keeps equal subtrees once across objects (kube.objects.SharedTrees, issue 16): each
    kept object must equal its own trim, judge alike, and stay as it was after every check read it
    (a check editing a shared subtree would change other Deployments' verdicts). A tiny table limit
    exercises its clearing."""
    import copy

    from readiness_operator.kube.objects import SharedTrees, trim_deployment, trim_hpa, trim_pdb

    shared = SharedTrees(limit=limit)
    deps = [d for d in deps if isinstance(d.get("metadata"), dict) and isinstance(d.get("spec"), dict)]
    own = [trim_deployment(d) for d in deps]
    kept = [shared.share(trim_deployment(d)) for d in deps]
    kept_pdbs = [shared.share(trim_pdb(p)) for p in pdb_list if isinstance(p.get("spec"), dict)]
    kept_hpas = [shared.share(trim_hpa(h)) for h in hpa_list if isinstance(h.get("spec"), dict)]
    assert kept == own and len({id(k) for k in kept}) == len(kept)  # equal, yet each object its own root
    assert kept_pdbs == [trim_pdb(p) for p in pdb_list if isinstance(p.get("spec"), dict)]
    before = copy.deepcopy((kept, kept_pdbs, kept_hpas))
    world = World(pdbs=kept_pdbs, hpas=kept_hpas, now=NOW)
    own_world = World(pdbs=copy.deepcopy(kept_pdbs), hpas=copy.deepcopy(kept_hpas), now=NOW)
    for mine, theirs in zip(kept, own, strict=True):
        assert evaluate(spec, mine, world) == evaluate(spec, theirs, own_world)
    assert (kept, kept_pdbs, kept_hpas) == before


def test_shared_subtrees_merge_only_equal_types() -> None:
    from readiness_operator.kube.objects import SharedTrees

    shared = SharedTrees()
    a = shared.share({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"v": [True], "w": {"n": 1}}})
    b = shared.share({"metadata": {"name": "b", "labels": {"x": "1"}}, "spec": {"v": [1], "w": {"n": 1.0}}})
    c = shared.share({"metadata": {"name": "c", "labels": {"x": "1"}}, "spec": {"v": [True], "w": {"n": 1}}})
    assert a["metadata"]["labels"] is b["metadata"]["labels"] is c["metadata"]["labels"]
    assert a["spec"] is c["spec"] and a["metadata"] is not c["metadata"]
    assert a["spec"]["v"] is not b["spec"]["v"] and type(b["spec"]["v"][0]) is int  # True and 1 stay apart
    assert a["spec"]["w"] is not b["spec"]["w"] and type(b["spec"]["w"]["n"]) is float


_POLICY_IDS = ["all-rules", "production", "hardened", "baseline"]


@pytest.mark.parametrize(
    "dep",
    [
        {"kind": "Deployment"},
        {"kind": "Deployment", "metadata": None, "spec": None},
        {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": None}}}},
        {"kind": "Deployment", "metadata": {"name": "x"}, "spec": {"template": {"spec": {"containers": []}}}},
        {"kind": "Deployment", "metadata": {"name": "n" * 100_000}, "spec": {"replicas": 0}},
        {
            "kind": "Deployment",
            "metadata": {"name": "q"},
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "a",
                                "resources": {"requests": {"cpu": "500m", "memory": "0.5Gi"}, "limits": {"memory": "1e3"}},
                            },
                            {"name": "b", "resources": {"requests": {"cpu": None, "memory": "1.5"}, "limits": None}},
                            {
                                "name": "c",
                                "resources": {"requests": {"cpu": "1e999", "memory": "12e-3"}, "limits": {"cpu": "abc"}},
                            },
                        ]
                    }
                }
            },
        },
    ],
    ids=["bare", "null-sections", "null-containers", "no-containers", "huge-name", "weird-quantities"],
)
@pytest.mark.parametrize("spec", POLICIES, ids=_POLICY_IDS)
def test_engine_hostile_examples(dep: dict[str, Any], spec: ReadinessPolicySpec) -> None:
    verdict = evaluate(spec, dep, World(now=NOW))
    assert [f.check for f in verdict.findings] == compile_policy(spec).check_ids


# Documents that are not shaped like a Deployment at all (possible only in files read by the CLI: the
# API server rejects them): a clear MalformedObject naming the path, never an AttributeError/TypeError.
@pytest.mark.parametrize(
    "dep",
    [
        pytest.param({"kind": "Deployment", "metadata": "x", "spec": {}}, id="metadata-string"),
        pytest.param({"kind": "Deployment", "spec": [1]}, id="spec-list"),
        pytest.param({"kind": "Deployment", "spec": {"template": "t"}}, id="template-string"),
        pytest.param({"kind": "Deployment", "spec": {"template": {"spec": {"containers": "nginx"}}}}, id="containers-string"),
        pytest.param({"kind": "Deployment", "spec": {"template": {"spec": {"containers": {"a": 1}}}}}, id="containers-dict"),
        pytest.param(
            {"kind": "Deployment", "spec": {"template": {"spec": {"containers": [None, 5]}}}}, id="container-not-object"
        ),
        pytest.param({"kind": "Deployment", "spec": {"replicas": "three"}}, id="replicas-string"),
    ],
)
def test_engine_type_confused_documents(dep: dict[str, Any]) -> None:
    with pytest.raises(MalformedObject, match=r"malformed Deployment: (metadata|spec)"):
        evaluate(_ALL_RULES, dep, World(now=NOW))


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ("containers: nginx", "spec.template.spec.containers: expected a list of objects, got str"),
        ("replicas: three", "spec.replicas: expected an integer, got str"),
    ],
)
def test_cli_reports_malformed_files_as_bad_input(tmp_path: Path, doc: str, expected: str) -> None:
    from readiness_operator.cli import main

    spec = {"replicas": "three"} if doc.startswith("replicas") else {"template": {"spec": {"containers": "nginx"}}}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": spec}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"apiVersion": "readiness.dev/v1alpha1", "kind": "ReadinessPolicy",
                                      "metadata": {"name": "p"}, "spec": {"rules": {"replicas": {"min": 1}}}}))
    assert main(["audit", "--policy", str(policy), "-f", str(bad)]) == 2


related_pdbs = st.fixed_dictionaries(
    {
        "kind": st.just("PodDisruptionBudget"),
        "metadata": st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "b"]), "namespace": st.sampled_from(["default", "team-1"])}
        ),
    },
    optional={"spec": nullable(obj(selector=selector_obj, minAvailable=int_or_string))},
)
related_hpas = st.fixed_dictionaries(
    {
        "kind": st.just("HorizontalPodAutoscaler"),
        "metadata": st.fixed_dictionaries(
            {"name": st.sampled_from(["a", "b"]), "namespace": st.sampled_from(["default", "team-1"])}
        ),
    },
    optional={
        "spec": nullable(
            obj(
                scaleTargetRef=obj(
                    apiVersion=st.just("apps/v1"), kind=st.just("Deployment"), name=st.sampled_from(["web", "svc-1", ""])
                ),
                minReplicas=st.integers(1, 5),
                metrics=st.lists(metric, max_size=2),
            )
        )
    },
)


@SLOW
@given(
    st.lists(deployments, min_size=1, max_size=4),
    st.lists(related_pdbs, max_size=5),
    st.lists(related_hpas, max_size=5),
    st.sampled_from(POLICIES),
)
def test_world_builder_gives_the_same_verdicts_as_a_full_scan(
    deps: list[dict[str, Any]], pdb_list: list[dict[str, Any]], hpa_list: list[dict[str, Any]], spec: ReadinessPolicySpec
) -> None:
    """The one World builder (a PDB/HPA index, no N x M scan) only drops objects that cannot relate."""
    worlds = Worlds(InMemoryView(deps, pdb_list, hpa_list), NOW)
    for dep in deps:
        ns = namespace_of(dep)
        scan = World(pdbs=tuple(p for p in pdb_list if namespace_of(p) == ns),
                     hpas=tuple(h for h in hpa_list if namespace_of(h) == ns), now=NOW)
        assert evaluate(spec, dep, worlds.of(dep)) == evaluate(spec, dep, scan)


_condition = st.fixed_dictionaries(
    {"type": st.sampled_from(["ScalingActive", "AbleToScale", "ScalingLimited", "Other"])},
    optional={"status": st.sampled_from(["True", "False", "Unknown", ""]),
              "reason": st.sampled_from(["ValidMetricFound", "FailedGetResourceMetric", "ScaleDownStabilized", ""]),
              "message": st.text(max_size=20), "lastTransitionTime": st.sampled_from(["2026-01-01T00:00:00Z", "t2"])},
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.lists(st.one_of(_condition, st.just("odd"), st.just(None)), max_size=5), st.just("odd"),
                 st.none()))
def test_an_hpa_trimmed_to_the_conditions_hpa_active_reads_gets_the_same_finding(conditions: Any) -> None:
    """The operator keeps of an HPA's conditions only what `hpa-active` reads (issue 16: the rest moves
    with every HPA sync and woke passes); any conditions, odd ones too, give the same finding."""
    from readiness_operator.kube.objects import trim_hpa

    policy = ReadinessPolicySpec.model_validate({"rules": {"liveState": {}}})
    plan = compile_policy(policy)
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
           "metadata": {"name": "web", "namespace": "demo"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                    "minReplicas": 2, "maxReplicas": 4},
           "status": {"conditions": conditions, "currentReplicas": 2}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "demo"},
                  "spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}},
                                                        "spec": {"containers": [{"name": "c", "image": "i:1"}]}}}}

    def finding(h: Mapping[str, Any]) -> Any:
        found = [f for f in evaluate(plan, deployment, World(hpas=[h], live=True, now=NOW)).findings
                 if f.check == "hpa-active"]
        return [(f.status, f.message) for f in found]

    assert finding(trim_hpa(hpa)) == finding(hpa) != []
