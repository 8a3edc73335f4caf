"""Converts OpenELB's custom resources between network.kubesphere.io/v1alpha1 and v1alpha2.

Pure (DESIGN §3): dicts in, new dicts out, no I/O and no logging. The apiserver calls the
controller's `/convert` endpoint for BgpConf and BgpPeer (their CRDs use the Webhook
conversion strategy); that endpoint hands the ConversionReview body to `review` and sends
back what it returns. Eip never reaches the webhook (its versions are identical, strategy
None) but `convert` knows it too, so one function covers every kind.

The versions do not hold the same things. v1alpha2 has many fields v1alpha1 never had
(timers, afiSafis, asPerRack, ...) and v1alpha1 has `usingPortForward`, which v1alpha2
dropped. Nothing is lost in either direction: what the target version cannot hold travels
as compact, key-sorted JSON in an annotation on the converted object, and converting back
restores it and removes the annotation, so `convert(convert(x, other), version_of(x)) == x`.

    annotation on a v1alpha1 object    conversion.openelb.kubesphere.io/v1alpha2-fields
    annotation on a v1alpha2 object    conversion.openelb.kubesphere.io/v1alpha1-fields

A field both versions hold (`routerID`/`routerId`, `config`/`conf`, the IPv4 `sendMax`,
...) is written in the target version and never into the annotation, so an edit made
through either version wins; only the parts that client could not see come back from the
annotation. A preserved part that such an edit made moot (an empty v1alpha1 `addPaths`
once v1alpha2 gained a sendMax) is dropped. An annotation that does not parse is ignored.

What "valid" means for the round trip: an object as the apiserver sends it, which never
carries the annotation named after its own version and never has an empty
`metadata.annotations` map (Kubernetes omits empty maps).

    InvalidObject (api/errors.py)   an object that cannot be converted (unknown kind or
                                    version, a spec or metadata that is not an object);
                                    `review` turns it, and a malformed review, into a
                                    Failure response and never raises
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from openelb.api import annotations as api_annotations
from openelb.api import errors

__all__ = [
    "KINDS",
    "REVIEW_API_VERSION",
    "V1ALPHA1",
    "V1ALPHA1_FIELDS",
    "V1ALPHA2",
    "V1ALPHA2_FIELDS",
    "convert",
    "review",
]

GROUP: Final = "network.kubesphere.io"
V1ALPHA1: Final = f"{GROUP}/v1alpha1"
V1ALPHA2: Final = f"{GROUP}/v1alpha2"
_VERSIONS: Final = (V1ALPHA1, V1ALPHA2)
KINDS: Final = ("BgpConf", "BgpPeer", "Eip")
REVIEW_API_VERSION: Final = "apiextensions.k8s.io/v1"

# Named after the version whose fields they carry, not the object they sit on.
V1ALPHA1_FIELDS: Final = api_annotations.V1ALPHA1_FIELDS
V1ALPHA2_FIELDS: Final = api_annotations.V1ALPHA2_FIELDS
_FIELDS_ANNOTATION: Final = {V1ALPHA1: V1ALPHA1_FIELDS, V1ALPHA2: V1ALPHA2_FIELDS}

Spec = dict[str, Any]
# (spec in the source version, parts of the target version preserved on the source object)
#   -> (spec in the target version, parts of the source version the target cannot hold)
SpecConverter = Callable[[Spec, Spec], tuple[Spec, Spec]]


class _Missing:
    """Marks a key that is absent, as opposed to one set to null."""


_MISSING: Final = _Missing()


# ---- the public functions --------------------------------------------------------------


def convert(obj: Any, to_api_version: str) -> dict[str, Any]:
    """`obj` (an Eip, BgpConf or BgpPeer dict) in `to_api_version`, as a new dict."""
    if not isinstance(obj, dict):
        raise errors.InvalidObject("(object)", "must be an object")
    source = obj.get("apiVersion")
    if source not in _VERSIONS:
        raise errors.InvalidObject(
            "apiVersion", f"cannot convert from {_show(source)}; {_served()}", value=source
        )
    if to_api_version not in _VERSIONS:
        raise errors.InvalidObject(
            "apiVersion", f"cannot convert to {_show(to_api_version)}; {_served()}",
            value=to_api_version,
        )
    kind = obj.get("kind")
    if kind not in KINDS:
        raise errors.InvalidObject(
            "kind", f"cannot convert {_show(kind)}; openelb converts {', '.join(KINDS)}",
            value=kind,
        )
    out = copy.deepcopy(obj)
    if source == to_api_version:
        return out
    out["apiVersion"] = to_api_version
    converter = _CONVERTERS[kind][to_api_version]
    if converter is not None:
        _convert_spec(out, converter, source=source, target=to_api_version)
    return out


def review(request_body: Any) -> dict[str, Any]:
    """The ConversionReview answering `request_body`; failures are answers too, never raised."""
    request = request_body.get("request") if isinstance(request_body, dict) else None
    if not isinstance(request, dict):
        return _failed("", "ConversionReview request: must be an object")
    uid = request.get("uid")
    if not isinstance(uid, str) or not uid:
        return _failed("", "ConversionReview request.uid: required")
    desired = request.get("desiredAPIVersion")
    if not isinstance(desired, str) or not desired:
        return _failed(uid, "ConversionReview request.desiredAPIVersion: required")
    objects = request.get("objects")
    if not isinstance(objects, list):
        return _failed(uid, "ConversionReview request.objects: must be a list")
    converted = []
    for index, obj in enumerate(objects):
        try:
            converted.append(convert(obj, desired))
        except errors.InvalidObject as exc:
            return _failed(uid, str(exc.with_ref(_ref(obj, index))))
    return _answer(uid, {"status": "Success"}, converted)


def _answer(uid: str, result: dict[str, Any], objects: list[Any] | None) -> dict[str, Any]:
    response: dict[str, Any] = {"uid": uid, "result": result}
    if objects is not None:
        response["convertedObjects"] = objects
    return {"apiVersion": REVIEW_API_VERSION, "kind": "ConversionReview", "response": response}


def _failed(uid: str, message: str) -> dict[str, Any]:
    return _answer(uid, {"status": "Failure", "message": message}, None)


def _ref(obj: Any, index: int) -> str:
    """`BgpPeer/tor` when the object says what it is, else its place in the request."""
    if isinstance(obj, dict):
        metadata = obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        kind = obj.get("kind")
        if isinstance(kind, str) and kind and isinstance(name, str) and name:
            return f"{kind}/{name}"
    return f"request.objects[{index}]"


def _served() -> str:
    return f"openelb serves {V1ALPHA1} and {V1ALPHA2}"


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


# ---- the object: annotations in, spec converted, annotations out -------------------------


def _convert_spec(out: dict[str, Any], converter: SpecConverter, *, source: str,
                  target: str) -> None:
    """Converts `out` (a copy, already relabelled `target`) in place."""
    metadata = out.get("metadata", _MISSING)
    if metadata is not _MISSING and not isinstance(metadata, dict):
        raise errors.InvalidObject("metadata", "must be an object")
    notes = metadata.get("annotations", _MISSING) if isinstance(metadata, dict) else _MISSING
    if notes is None:
        notes = _MISSING  # `annotations: null` holds nothing, like no key at all
    if notes is not _MISSING and not isinstance(notes, dict):
        raise errors.InvalidObject("metadata.annotations", "must be an object")
    spec = out.get("spec", _MISSING)
    if spec is not _MISSING and not isinstance(spec, dict):
        raise errors.InvalidObject("spec", "must be an object")

    # What an earlier conversion set aside for the target version; a stale note named
    # after the source version would otherwise be carried back as if it were fresh.
    kept: Spec = {}
    removed = False
    if isinstance(notes, dict):
        removed = _FIELDS_ANNOTATION[target] in notes or _FIELDS_ANNOTATION[source] in notes
        kept = _load(notes.pop(_FIELDS_ANNOTATION[target], None))
        notes.pop(_FIELDS_ANNOTATION[source], None)

    converted, left = converter(spec if isinstance(spec, dict) else {}, kept)
    if spec is not _MISSING or converted:
        out["spec"] = converted

    if left:
        if not isinstance(metadata, dict):
            metadata = out["metadata"] = {}
        if not isinstance(notes, dict):
            notes = metadata["annotations"] = {}
        notes[_FIELDS_ANNOTATION[source]] = _dump(left)
    elif removed and isinstance(metadata, dict) and notes == {}:
        del metadata["annotations"]  # Kubernetes never sends an empty map; don't add one


def _load(text: Any) -> Spec:
    """The parts an annotation preserved, or nothing when it is missing or unreadable."""
    if not isinstance(text, str):
        return {}
    try:
        loaded = json.loads(text)
    except (ValueError, RecursionError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _dump(parts: Spec) -> str:
    # Sorted and compact: the same parts always give the same string, so reading an object
    # through the other version and writing it back unchanged changes nothing.
    try:
        return json.dumps(parts, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        raise errors.InvalidObject("spec", "holds a value that is not JSON") from None


# ---- helpers shared by the kinds ---------------------------------------------------------


def _pick(part: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    return {key: part[key] for key in keys if key in part}


def _omit(part: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    dropped = set(keys)
    return {key: value for key, value in part.items() if key not in dropped}


def _overlay(kept: Spec, mapped: Spec) -> Spec:
    """`mapped` (converted fields, authoritative) over `kept` (preserved parts), merging
    one level deep where both hold an object under the same key."""
    merged = dict(kept)
    for key, value in mapped.items():
        old = merged.get(key)
        merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) \
            else value
    return merged


def _strip(kept: Spec, nested: dict[str, tuple[str, ...]], top: Iterable[str] = ()) -> Spec:
    """`kept` without the fields the other version maps: whatever it says there is stale."""
    clean = _omit(kept, top)
    for key, fields in nested.items():
        part = clean.get(key)
        if isinstance(part, dict):
            clean[key] = _omit(part, fields)
    return clean


def _split(spec: Spec, nested: Mapping[str, tuple[str, tuple[str, ...]]],
           special: Iterable[str] = ()) -> tuple[Spec, Spec]:
    """Moves the mapped fields of nested objects across: {source key: (target key, ...)}.

    The target object exists whenever the source object does, even when it ends up empty,
    so `transport: {}` comes back as `transport: {}`. Keys in `special` are left for the
    caller; everything else is kept for the annotation.
    """
    mapped: Spec = {}
    left: Spec = {}
    skip = set(special)
    for key, value in spec.items():
        if key in nested and isinstance(value, dict):
            target, fields = nested[key]
            mapped[target] = _pick(value, fields)
            rest = _omit(value, fields)
            if rest:
                left[key] = rest
        elif key not in skip:
            left[key] = value
    return mapped, left


# ---- BgpConf -------------------------------------------------------------------------------

# v1alpha2 name -> v1alpha1 name of the top-level fields both versions hold.
_BGPCONF_NAMES: Final = {"as": "as", "routerId": "routerID", "listenPort": "port"}


def _is_port(value: Any) -> bool:
    """A v1alpha1 `port` (1..65535). v1alpha2's 0 (default) and -1 (do not listen) are not."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535


def _bgpconf_rename(spec: Spec, names: dict[str, str], port: str) -> tuple[Spec, Spec]:
    mapped: Spec = {}
    left: Spec = {}
    for key, value in spec.items():
        if key in names and (key != port or _is_port(value)):
            mapped[names[key]] = value
        else:
            left[key] = value
    return mapped, left


def _bgpconf_kept(kept: Spec, names: dict[str, str], port: str) -> Spec:
    # A preserved port that is not a real port stays (the other version could not hold
    # it); any other preserved copy of a mapped field is stale.
    return {key: value for key, value in kept.items()
            if key not in names or (key == port and not _is_port(value))}


def _bgpconf_down(spec: Spec, kept: Spec) -> tuple[Spec, Spec]:
    """v1alpha2 -> v1alpha1."""
    mapped, left = _bgpconf_rename(spec, _BGPCONF_NAMES, "listenPort")
    v1_names = {old: old for old in _BGPCONF_NAMES.values()}
    return _overlay(_bgpconf_kept(kept, v1_names, "port"), mapped), left


def _bgpconf_up(spec: Spec, kept: Spec) -> tuple[Spec, Spec]:
    """v1alpha1 -> v1alpha2."""
    back = {old: new for new, old in _BGPCONF_NAMES.items()}
    mapped, left = _bgpconf_rename(spec, back, "port")
    v2_names = {new: new for new in _BGPCONF_NAMES}
    return _overlay(_bgpconf_kept(kept, v2_names, "listenPort"), mapped), left


# ---- BgpPeer -------------------------------------------------------------------------------

_PEER_FIELDS: Final = ("peerAs", "neighborAddress")
_TRANSPORT_FIELDS: Final = ("passiveMode", "remotePort")
# Objects both versions hold, with the fields inside them that both versions hold:
# {source key: (target key, fields)}, v1alpha2 -> v1alpha1 and back.
_PEER_DOWN: Final = {"conf": ("config", _PEER_FIELDS),
                     "transport": ("transport", _TRANSPORT_FIELDS)}
_PEER_UP: Final = {"config": ("conf", _PEER_FIELDS),
                   "transport": ("transport", _TRANSPORT_FIELDS)}


def _ipv4_unicast(send_max: Any) -> dict[str, Any]:
    """The afiSafis entry a bare v1alpha1 `addPaths.sendMax` stands for."""
    return {
        "config": {"family": {"afi": "AFI_IP", "safi": "SAFI_UNICAST"}, "enabled": True},
        "addPaths": {"config": {"sendMax": send_max}},
    }


def _first_ipv4(afi_safis: list[Any]) -> int | None:
    """Index of the first AFI_IP entry: the one whose sendMax v1alpha1 calls addPaths.sendMax."""
    for index, entry in enumerate(afi_safis):
        config = entry.get("config") if isinstance(entry, dict) else None
        family = config.get("family") if isinstance(config, dict) else None
        if isinstance(family, dict) and family.get("afi") == "AFI_IP":
            return index
    return None


def _send_max_of(entry: dict[str, Any]) -> Any:
    add_paths = entry.get("addPaths")
    config = add_paths.get("config") if isinstance(add_paths, dict) else None
    return config.get("sendMax", _MISSING) if isinstance(config, dict) else _MISSING


def _without_send_max(entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` without addPaths.config.sendMax, dropping the objects that held only it
    (`_with_send_max` puts them back)."""
    if _send_max_of(entry) is _MISSING:
        return entry
    add_paths = dict(entry["addPaths"])
    config = _omit(add_paths["config"], ("sendMax",))
    if config:
        add_paths["config"] = config
    else:
        del add_paths["config"]
    stripped = _omit(entry, ("addPaths",))
    if add_paths:
        stripped["addPaths"] = add_paths
    return stripped


def _with_send_max(entry: dict[str, Any], send_max: Any) -> dict[str, Any]:
    add_paths = entry.get("addPaths")
    add_paths = dict(add_paths) if isinstance(add_paths, dict) else {}
    config = add_paths.get("config")
    add_paths["config"] = {**(config if isinstance(config, dict) else {}), "sendMax": send_max}
    return {**entry, "addPaths": add_paths}


def _replace(items: list[Any], index: int, item: Any) -> list[Any]:
    return [*items[:index], item, *items[index + 1:]]


def _afi_safis_down(afi_safis: Any) -> tuple[Any, Any]:
    """v1alpha2 afiSafis -> (v1alpha1 sendMax, what v1alpha1 cannot hold), each maybe _MISSING."""
    if not isinstance(afi_safis, list):
        return _MISSING, afi_safis
    index = _first_ipv4(afi_safis)
    if index is None:
        return _MISSING, afi_safis
    send_max = _send_max_of(afi_safis[index])
    if send_max is _MISSING:
        return _MISSING, afi_safis
    if _exact(afi_safis) == _exact([_ipv4_unicast(send_max)]):
        return send_max, _MISSING  # exactly what the sendMax alone stands for
    return send_max, _replace(afi_safis, index, _without_send_max(afi_safis[index]))


def _afi_safis_up(send_max: Any, kept: Any) -> Any:
    """v1alpha1 sendMax over the preserved afiSafis -> v1alpha2 afiSafis (maybe _MISSING)."""
    if not isinstance(kept, list):
        return kept if send_max is _MISSING else [_ipv4_unicast(send_max)]
    index = _first_ipv4(kept)
    if index is None:
        return kept if send_max is _MISSING else [*kept, _ipv4_unicast(send_max)]
    entry = _without_send_max(kept[index])  # v1alpha1 decides the IPv4 sendMax, even its absence
    if send_max is not _MISSING:
        entry = _with_send_max(entry, send_max)
    return _replace(kept, index, entry)


def _exact(value: Any) -> str:
    # Strict equality for JSON values: Python's == says True == 1 == 1.0.
    return json.dumps(value, sort_keys=True)


def _bgppeer_down(spec: Spec, kept: Spec) -> tuple[Spec, Spec]:
    """v1alpha2 -> v1alpha1."""
    mapped, left = _split(spec, _PEER_DOWN, special=("afiSafis",))
    if "afiSafis" in spec:
        send_max, rest = _afi_safis_down(spec["afiSafis"])
        if send_max is not _MISSING:
            mapped["addPaths"] = {"sendMax": send_max}
        if rest is not _MISSING:
            left["afiSafis"] = rest
    clean = _strip(kept, {"config": _PEER_FIELDS, "transport": _TRANSPORT_FIELDS,
                          "addPaths": ("sendMax",)})
    return _overlay(clean, mapped), left


def _bgppeer_up(spec: Spec, kept: Spec) -> tuple[Spec, Spec]:
    """v1alpha1 -> v1alpha2."""
    mapped, left = _split(spec, _PEER_UP, special=("addPaths",))
    send_max: Any = _MISSING
    add_paths = spec.get("addPaths", _MISSING)
    if isinstance(add_paths, dict):
        send_max = add_paths.get("sendMax", _MISSING)
        rest = _omit(add_paths, ("sendMax",))
        if rest or send_max is _MISSING:
            left["addPaths"] = rest  # an empty addPaths must come back as one
    elif add_paths is not _MISSING:
        left["addPaths"] = add_paths
    clean = _strip(kept, {"conf": _PEER_FIELDS, "transport": _TRANSPORT_FIELDS})
    merged = _overlay(_omit(clean, ("afiSafis",)), mapped)
    afi_safis = _afi_safis_up(send_max, clean.get("afiSafis", _MISSING))
    if afi_safis is not _MISSING:
        merged["afiSafis"] = afi_safis
    return merged, left


# kind -> target version -> how to convert the spec into it (None: nothing to change).
_CONVERTERS: Final[dict[str, dict[str, SpecConverter | None]]] = {
    "Eip": {V1ALPHA1: None, V1ALPHA2: None},
    "BgpConf": {V1ALPHA1: _bgpconf_down, V1ALPHA2: _bgpconf_up},
    "BgpPeer": {V1ALPHA1: _bgppeer_down, V1ALPHA2: _bgppeer_up},
}
