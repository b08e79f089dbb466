"""From pair decisions to persons: greedy clustering that never joins a forbidden pair.

Plain connected components chain: A-B and B-C make A-C one person even when A and C are twins.
Here links are taken strongest first, and two clusters are joined only if no pair across them
was forbidden by a rule (different NIKs, twins, ...). Field reports (``reference/mpi.md`` §9)
name transitive chaining as one of the few ways false merges happen.
"""

from __future__ import annotations

from collections.abc import Iterable


def cluster(
    n: int,
    links: Iterable[tuple[float, int, int]],
    cannot: Iterable[tuple[int, int]] = (),
) -> list[int]:
    """Cluster labels for records ``0..n-1``: ``links`` are (probability, i, j), ``cannot``
    pairs that may never share a cluster. Returns each record's cluster representative."""
    parent = list(range(n))
    members: dict[int, set[int]] = {i: {i} for i in range(n)}
    banned: dict[int, set[int]] = {i: set() for i in range(n)}
    for i, j in cannot:
        banned[i].add(j)
        banned[j].add(i)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, i, j in sorted(links, key=lambda t: (-t[0], t[1], t[2])):
        ri, rj = find(i), find(j)
        if ri == rj or members[ri] & banned[rj]:
            continue
        if len(members[ri]) < len(members[rj]):
            ri, rj = rj, ri
        parent[rj] = ri
        members[ri] |= members.pop(rj)
        banned[ri] |= banned.pop(rj)
    return [find(i) for i in range(n)]
