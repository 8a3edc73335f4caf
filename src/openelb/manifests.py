"""Checks a set of manifests the way the cluster would: each object on its own, then the
pools together, then whether anything among them can announce each pool (the
controller's NotAnnounced check, ipam/coverage). Used by `openelb validate`; the words
come from validation.py, which the admission webhook asks too.

Pure (DESIGN §3 level of api/ipam): takes parsed YAML documents, returns findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from openelb import validation
from openelb.api import annotations as api_annotations
from openelb.api import bgp, conversion, eip, errors, service
from openelb.ipam import coverage, pools

__all__ = ["Finding", "check_documents"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One object's verdict: `error` is empty when it is valid."""

    ref: str
    error: str = ""
    # Valid, but something the user will notice: e.g. a pool nothing can announce.
    warning: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def _as_stored(doc: dict[str, Any]) -> dict[str, Any]:
    """An openelb object in the version the cluster stores (v1alpha2), converted as the
    apiserver would through the conversion webhook; anything else as it is."""
    api_version = str(doc.get("apiVersion") or "")
    if doc.get("kind") in conversion.KINDS and api_version.startswith(
            f"{api_annotations.API_GROUP}/") and api_version != conversion.V1ALPHA2:
        return conversion.convert(doc, conversion.V1ALPHA2)
    return doc


def _ref(doc: Mapping[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    kind = str(doc.get("kind") or "object").lower()
    name = meta.get("name") or "<unnamed>"
    return f"{kind}/{meta['namespace']}/{name}" if meta.get("namespace") else f"{kind}/{name}"


def check_documents(docs: Iterable[Any], *, lb_class: str | None = None) -> list[Finding]:
    """Validate Eip, BgpConf, BgpPeer and Service documents; other kinds are skipped."""
    findings: list[Finding] = []
    parsed_pools: dict[str, tuple[str, pools.Pool]] = {}
    confs: list[bgp.BgpConf] = []
    peers: list[bgp.BgpPeer] = []
    services: list[tuple[str, dict[str, Any]]] = []
    for original in docs:
        if not isinstance(original, dict):
            continue
        kind, ref = original.get("kind"), _ref(original)
        try:
            doc = _as_stored(original)
        except errors.InvalidObject as exc:
            findings.append(Finding(ref, exc.message))
            continue
        verdict = validation.Verdict()
        if kind == "Eip":
            try:
                pool = pools.Pool.from_eip(eip.Eip.parse(doc))
            except errors.InvalidObject as exc:
                findings.append(Finding(ref, exc.message))
                continue
            parsed_pools[pool.name] = (ref, pool)
            continue  # judged with the other pools below
        if kind == "BgpConf":
            verdict = validation.check_bgpconf(doc)
            if verdict.allowed:
                confs.append(bgp.BgpConf.parse(doc))
        elif kind == "BgpPeer":
            verdict = validation.check_bgppeer(doc, peers)
            if verdict.allowed:
                peers.append(bgp.BgpPeer.parse(doc))
        elif kind == "Service":
            services.append((ref, doc))  # judged against the pools below
            continue
        else:
            continue
        findings.append(Finding(ref, verdict.error, "; ".join(verdict.warnings)))
    pool_list = [pool for _, pool in parsed_pools.values()]
    problems = pools.find_problems(pool_list)
    for name, (ref, pool) in parsed_pools.items():
        problem = problems.get(name)
        gap = coverage.unannounced(pool, confs, peers)
        findings.append(Finding(ref, problem.message if problem else "",
                                f"{gap.message} (among these manifests)" if gap else ""))
    for ref, doc in services:
        try:
            service.LbService.parse(doc, lb_class=lb_class)
        except errors.InvalidObject as exc:
            findings.append(Finding(ref, exc.message))
            continue
        warnings: tuple[str, ...] = ()
        if pool_list:  # pools, namespaces and holders live in the cluster; judge what is here
            warnings = validation.check_service(
                doc, lb_class=lb_class, pool_list=pool_list, namespace_labels={},
                holders=lambda ip: ()).warnings
        findings.append(Finding(ref, "", "; ".join(
            f"{w} (among these manifests)" for w in warnings)))
    return findings
