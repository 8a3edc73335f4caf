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

    def _before(self, value: int) -> tuple[int, int] | None:
        """The run starting at or before `value` (it may end before `value`)."""
        index = self._runs.bisect_right(value) - 1
        if index < 0:
            return None
        start = self._starts[index]
        end: int = dict.__getitem__(self._runs, start)  # type: ignore[index]  # skip the wrapper
        return start, end

    def __contains__(self, value: int) -> bool:
        run = self._before(value)
        return run is not None and value <= run[1]

    def add(self, value: int) -> bool:
        """Mark `value` used; False if it already was."""
        run = self._before(value)
        if run is not None and value <= run[1]:
            return False
        start, end = value, value
        if run is not None and run[1] == value - 1:
            start = run[0]  # extends the run just below
        if dict.__contains__(self._runs, value + 1):
            end = self._runs.pop(value + 1)  # and swallows the run just above
        self._runs[start] = end
        self._count += 1
        return True

    def discard(self, value: int) -> bool:
        """Mark `value` free; False if it was not used."""
        run = self._before(value)
        if run is None or value > run[1]:
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
        run = self._before(first)
        candidate = run[1] + 1 if run is not None and first <= run[1] else first
        return candidate if candidate <= last else None
