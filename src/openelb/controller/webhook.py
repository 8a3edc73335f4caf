"""The admission and conversion webhooks every controller replica serves (DESIGN §2).

controller/. Routes (POST, JSON, over TLS from controller/certs.py):

    /validate/eips       AdmissionReview: Eip create/update       (deny on error)
    /validate/bgpconfs   AdmissionReview: BgpConf create/update   (deny on error)
    /validate/bgppeers   AdmissionReview: BgpPeer create/update   (deny on error)
    /validate/services   AdmissionReview: Service create/update   (warnings only)
    /convert             ConversionReview: v1alpha1 <-> v1alpha2  (api/conversion.py)

Judgement is validation.py's, against the controller's informer caches, which every
replica keeps warm; nothing here calls the apiserver, so a review costs microseconds
to a few milliseconds. Parsed pools and peers are kept per resourceVersion, and the
Service holders of each address are indexed as Services change, so a review never
re-reads every object. Until the caches have synced the checks that need other
objects are skipped with a warning saying so: the failure policy is Ignore anyway
(docs/webhook.md), and the controller still marks a conflicting pool not ready.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from openelb import httpserve, validation
from openelb.api import addresses, bgp, conversion, eip, errors, service
from openelb.ipam import pools
from openelb.kube import informer

__all__ = ["Webhook"]

log = logging.getLogger(__name__)

JSON = "application/json"
MAX_REVIEW_BYTES = 3 * 1024 * 1024  # an object is at most ~1.5 MB in etcd; old + new
NOT_SYNCED = ("openelb has not read every {kind} yet; checks against other objects "
              "were skipped")


class _Parsed:
    """Objects of one informer parsed once per resourceVersion."""

    def __init__(self, source: informer.Informer, parse: Callable[[Any], Any]) -> None:
        self._source = source
        self._parse = parse
        self._cache: dict[str, tuple[str, Any]] = {}

    def values(self) -> list[Any]:
        found, seen = [], set()
        for raw in self._source.items():
            meta = raw.get("metadata") or {}
            name, version = str(meta.get("name", "")), str(meta.get("resourceVersion", ""))
            seen.add(name)
            hit = self._cache.get(name)
            if hit is None or hit[0] != version:
                try:
                    value = self._parse(raw)
                except errors.InvalidObject:
                    value = None
                hit = (version, value)
                self._cache[name] = hit
            if hit[1] is not None:
                found.append(hit[1])
        for gone in set(self._cache) - seen:
            del self._cache[gone]
        return found


class _Holders:
    """Address -> the Services whose status holds it, kept as Services change."""

    def __init__(self, services: informer.Informer, lb_class: str | None) -> None:
        self._services = services
        self._lb_class = lb_class
        self._by_key: dict[str, service.LbService] = {}
        self._by_ip: dict[addresses.IPAddress, set[str]] = {}
        self._dirty: set[str] = set()
        self._primed = False

    def changed(self, key: str) -> None:
        self._dirty.add(key)

    def of(self, ip: addresses.IPAddress) -> list[service.LbService]:
        self._catch_up()
        return [self._by_key[k] for k in sorted(self._by_ip.get(ip, ()))]

    def _catch_up(self) -> None:
        if not self._primed:
            self._dirty.update(self._services.keys())
            self._primed = True
        for key in self._dirty:
            old = self._by_key.pop(key, None)
            for ip in old.assigned_ips if old else ():
                self._by_ip.get(ip, set()).discard(key)
            raw = self._services.get(key)
            if raw is None:
                continue
            try:
                svc = service.LbService.parse(raw, lb_class=self._lb_class)
            except errors.InvalidObject:
                continue
            if not svc.wants_address or not svc.assigned_ips:
                continue
            self._by_key[key] = svc
            for ip in svc.assigned_ips:
                self._by_ip.setdefault(ip, set()).add(key)
        self._dirty.clear()


class Webhook:
    """The request handler; `serve` is an httpserve handler."""

    def __init__(self, *, eips: informer.Informer, bgppeers: informer.Informer,
                 services: informer.Informer, namespaces: informer.Informer,
                 lb_class: str | None, registry: CollectorRegistry) -> None:
        # (A BgpConf is judged on its own: no cache of them is needed.)
        self._eips, self._bgppeers = eips, bgppeers
        self._services, self._namespaces = services, namespaces
        self._lb_class = lb_class
        self._routes: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "/validate/eips": lambda b: self._admit(b, "eips", self._eip),
            "/validate/bgpconfs": lambda b: self._admit(b, "bgpconfs", self._bgpconf),
            "/validate/bgppeers": lambda b: self._admit(b, "bgppeers", self._bgppeer),
            "/validate/services": lambda b: self._admit(b, "services", self._service),
            "/convert": self._convert,
        }
        self._pools = _Parsed(eips, lambda raw: pools.Pool.from_eip(eip.Eip.parse(raw)))
        self._peers = _Parsed(bgppeers, bgp.BgpPeer.parse)
        self.holders = _Holders(services, lb_class)
        self._reviews = Counter(
            "openelb_webhook_reviews", "Admission and conversion reviews answered",
            ["kind", "verdict"], registry=registry)
        self._seconds = Histogram(
            "openelb_webhook_review_seconds", "Time to answer one review", ["kind"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5))

    # ---- HTTP ----------------------------------------------------------------------------

    def serve(self, request: httpserve.Request) -> httpserve.Response:
        if request.method != "POST":
            return httpserve.Response(405, b"method not allowed\n")
        route = self._routes.get(request.path)
        if route is None:
            return httpserve.Response(404, b"not found\n")
        try:
            body = json.loads(request.body)
        except ValueError:
            return httpserve.Response(400, b"body is not JSON\n")
        if not isinstance(body, dict):
            return httpserve.Response(400, b"body is not a JSON object\n")
        began = time.perf_counter()
        kind = request.path.rsplit("/", 1)[-1]
        answer = route(body)
        self._seconds.labels(kind).observe(time.perf_counter() - began)
        return httpserve.Response(200, json.dumps(answer).encode(), JSON)

    # ---- admission -----------------------------------------------------------------------

    def _admit(self, body: dict[str, Any], kind: str,
               judge: Callable[[Any, Any], validation.Verdict]) -> dict[str, Any]:
        request = body.get("request")
        if not isinstance(request, dict) or "uid" not in request:
            self._reviews.labels(kind, "malformed").inc()
            return _admission({"uid": "", "allowed": False, "status": {
                "code": 400, "message": "not an AdmissionReview request"}})
        obj, old = request.get("object"), request.get("oldObject")
        if request.get("operation") == "DELETE" or obj is None:
            return _admission({"uid": request["uid"], "allowed": True})
        verdict = judge(obj, old)
        response: dict[str, Any] = {"uid": request["uid"], "allowed": verdict.allowed}
        if verdict.warnings:
            response["warnings"] = list(verdict.warnings)
        if not verdict.allowed:
            response["status"] = {"code": 422, "reason": "Invalid",
                                  "message": f"{_ref(obj, kind)} {verdict.error}"}
            log.info("admission denied", extra={
                "op": "webhook", "object": _ref(obj, kind), "error": verdict.error})
        self._reviews.labels(kind, "allowed" if verdict.allowed else "denied").inc()
        return _admission(response)

    def _eip(self, obj: Any, old: Any) -> validation.Verdict:
        if not self._eips.synced.is_set():
            verdict = validation.check_eip(obj, old, ())
            return _with_warning(verdict, NOT_SYNCED.format(kind="Eip"))
        return validation.check_eip(obj, old, self._pools.values())

    def _bgpconf(self, obj: Any, old: Any) -> validation.Verdict:
        return validation.check_bgpconf(obj)

    def _bgppeer(self, obj: Any, old: Any) -> validation.Verdict:
        if not self._bgppeers.synced.is_set():
            return _with_warning(validation.check_bgppeer(obj, ()),
                                 NOT_SYNCED.format(kind="BgpPeer"))
        return validation.check_bgppeer(obj, self._peers.values())

    def _service(self, obj: Any, old: Any) -> validation.Verdict:
        caches = (self._eips, self._services, self._namespaces)
        if not all(c.synced.is_set() for c in caches):
            return validation.Verdict(warnings=(NOT_SYNCED.format(kind="Eip and Service"),))
        namespace = str((obj.get("metadata") or {}).get("namespace") or "default") \
            if isinstance(obj, dict) else "default"
        labels = ((self._namespaces.get(namespace) or {}).get("metadata") or {}).get(
            "labels") or {}
        return validation.check_service(
            obj, lb_class=self._lb_class, pool_list=self._pools.values(),
            namespace_labels=labels, holders=self.holders.of)

    # ---- conversion ----------------------------------------------------------------------

    def _convert(self, body: dict[str, Any]) -> dict[str, Any]:
        answer = conversion.review(body)
        result = ((answer.get("response") or {}).get("result") or {}).get("status")
        self._reviews.labels("conversion", "converted" if result == "Success"
                             else "failed").inc()
        if result != "Success":
            log.warning("conversion failed", extra={
                "op": "webhook", "error": answer["response"]["result"].get("message")})
        return answer


def _admission(response: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "response": response}


def _with_warning(verdict: validation.Verdict, warning: str) -> validation.Verdict:
    return validation.Verdict(verdict.error, (*verdict.warnings, warning))


def _ref(obj: Any, kind: str) -> str:
    meta = (obj.get("metadata") or {}) if isinstance(obj, dict) else {}
    name = meta.get("name") or meta.get("generateName") or "<unnamed>"
    singular = kind.rstrip("s")
    namespace = meta.get("namespace")
    return f"{singular}/{namespace}/{name}" if namespace else f"{singular}/{name}"

