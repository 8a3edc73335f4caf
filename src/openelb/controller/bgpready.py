"""The `Ready` condition of BgpConf and BgpPeer objects, written by the leader.

controller/ (DESIGN §6). Speakers write what each node sees (`nodesConfStatus`,
`nodesPeerStatus`); this says whether the object is used at all, and why not, in
validation.py's words: invalid, ignored (a CNI's object, a BgpConf not named
`default`), or a duplicate of another peer. A merge patch of `status.conditions` only,
so the speakers' keys are never touched; unchanged verdicts are not written.
"""

import logging

from openelb import validation
from openelb.api import annotations as api_annotations
from openelb.api import bgp, errors
from openelb.controller import conditions
from openelb.kube import client, informer, resources
from openelb.kube import errors as kube_errors

__all__ = ["BgpReadiness"]

log = logging.getLogger(__name__)


class BgpReadiness:
    def __init__(self, kube: client.Kube, bgpconfs: informer.Informer,
                 bgppeers: informer.Informer) -> None:
        self._kube = kube
        self._confs = bgpconfs
        self._peers = bgppeers

    async def flush(self) -> None:
        """Write every BgpConf's and BgpPeer's Ready condition that changed."""
        if not (self._confs.synced.is_set() and self._peers.synced.is_set()):
            return
        for raw in self._confs.items():
            verdict = validation.check_bgpconf(raw)
            await self._write(resources.BGPCONFS, raw, verdict,
                              "every speaker uses these settings")
        parsed: dict[str, bgp.BgpPeer | errors.InvalidObject] = {}
        for raw in self._peers.items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            try:
                parsed[name] = bgp.BgpPeer.parse(raw)
            except errors.InvalidObject as exc:
                parsed[name] = exc
        duplicates = validation.refused_peers(
            p for p in parsed.values() if isinstance(p, bgp.BgpPeer))
        for raw in self._peers.items():
            name = str((raw.get("metadata") or {}).get("name", ""))
            peer = parsed.get(name)
            if isinstance(peer, errors.InvalidObject):
                verdict = validation.Verdict(error=peer.message)
            else:
                verdict = validation.Verdict(error=duplicates.get(name, ""))
            await self._write(resources.BGPPEERS, raw, verdict,
                              "the selected speakers peer with this neighbour; each node's "
                              "session is in status.nodesPeerStatus")

    async def _write(self, kind: resources.Resource, raw: client.RawObject,
                     verdict: validation.Verdict, accepted: str) -> None:
        meta = raw.get("metadata") or {}
        generation = meta.get("generation")
        labels = meta.get("labels") or {}
        if verdict.error:
            wanted = conditions.ready(False, "Invalid", verdict.error, generation)
        elif verdict.warnings or api_annotations.CNI_LABEL in labels:
            why = "; ".join(verdict.warnings) or "labelled for a CNI: openelb ignores it"
            wanted = conditions.ready(False, "Ignored", why, generation)
        else:
            wanted = conditions.ready(True, "Accepted", accepted, generation)
        current = (raw.get("status") or {}).get("conditions")
        updated = conditions.merged(current, wanted)
        if updated is None:
            return
        name = str(meta.get("name", ""))
        try:
            await self._kube.patch(kind, name, {"status": {"conditions": updated}},
                                   subresource="status")
        except kube_errors.NotFound:
            return
        except kube_errors.KubeError as exc:
            log.warning("condition not written", extra={
                kind.kind.lower(): name, "error": str(exc)})
            return
        log.info("condition written", extra={kind.kind.lower(): name,
                                             "ready": wanted["status"],
                                             "reason": wanted["reason"]})
