"""The set of addresses in use, stored as merged runs so that the lowest free address of
any interval is found in O(log n) and memory grows with the number of runs, never with
pool size (a /8 or /64 pool costs nothing until used).

Pure (DESIGN §3); owned by ipam/allocator.py, one per IP family. Runs are kept in a
SortedDict (sortedcontainers) mapping run start -> run end; adjacent runs are always
merged, so `end + 1` of a run is free by construction.
"""

from __future__ import annotations

from sortedcontainers import SortedDict

__all__ = ["Occupancy"]


class Occupancy:
    """Integers in use, as disjoint, non-adjacent inclusive runs."""

    def __init__(self) -> None:
        self._runs: SortedDict[int, int] = SortedDict()
        self._starts = self._runs.keys()  # a live view; indexing it is O(log n)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    @property
    def run_count(self) -> int:
        return len(self._runs)

    def _run_at(self, value: int) -> tuple[int, int] | None:
        index = self._runs.bisect_right(value) - 1
        if index < 0:
            return None
        start = self._starts[index]
        end = self._runs[start]
        return (start, end) if value <= end else None

    def __contains__(self, value: int) -> bool:
        return self._run_at(value) is not None

    def add(self, value: int) -> bool:
        """Mark `value` used; False if it already was."""
        if value in self:
            return False
        start, end = value, value
        left = self._run_at(value - 1)
        if left is not None:
            start = left[0]
        if value + 1 in self._runs:
            end = self._runs.pop(value + 1)
        self._runs[start] = end
        self._count += 1
        return True

    def discard(self, value: int) -> bool:
        """Mark `value` free; False if it was not used."""
        run = self._run_at(value)
        if run is None:
            return False
        start, end = run
        if start == value:
            del self._runs[start]
        else:
            self._runs[start] = value - 1
        if value < end:
            self._runs[value + 1] = end
        self._count -= 1
        return True

    def lowest_free(self, first: int, last: int) -> int | None:
        """Smallest unused integer in [first, last], or None when all are used."""
        run = self._run_at(first)
        candidate = first if run is None else run[1] + 1
        return candidate if candidate <= last else None
