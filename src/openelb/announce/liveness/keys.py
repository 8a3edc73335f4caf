"""The heartbeat keys of one speaker across a rotation (pure; announce/liveness).

The shared key lives in a Secret that every speaker re-reads on its own schedule, so
for a while some speakers know the new key and some do not. A heartbeat refused is a
dead node and a failover, so a rotation goes in two steps: a new key is accepted at
once but used for signing only after `settle` (by then every peer has read it), and
the key it replaces is still accepted for `settle` more (a peer that switches late).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["KeyRing"]


@dataclass(slots=True)
class KeyRing:
    signing: bytes
    # (key, sign with it from this time, how long the key it replaces stays accepted)
    _pending: list[tuple[bytes, float, float]] = field(default_factory=list)
    _retired: list[tuple[bytes, float]] = field(default_factory=list)  # (key, until)

    def rotate(self, key: bytes, now: float, settle: float) -> bool:
        """A key was read from the Secret; True when it is new (a key known already
        changes nothing)."""
        if key == self.signing or any(k == key for k, _, _ in self._pending):
            return False
        self._pending.append((key, now + settle, settle))
        return True

    def tick(self, now: float) -> None:
        """Sign with the newest key whose time came; keep the replaced keys accepted for
        their grace; forget them after."""
        due = [p for p in self._pending if p[1] <= now]
        for key, at, settle in due:
            self._retired.append((self.signing, at + settle))
            self.signing = key
        if due:
            self._pending = [p for p in self._pending if p[1] > now]
        self._retired = [(k, until) for k, until in self._retired
                         if until > now and k != self.signing]

    def accepted(self, now: float) -> tuple[bytes, ...]:
        """Keys a received heartbeat may be signed with, the signing key first."""
        self.tick(now)
        return tuple(dict.fromkeys((self.signing, *(k for k, _, _ in self._pending),
                                    *(k for k, _ in self._retired))))
