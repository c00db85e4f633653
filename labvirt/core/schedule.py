"""What each action of a plan waits for. Pure.

An action waits for the action before it in its chain (one object, or a pool with its volumes) and for
every action on a target it names in `needs`: a node starts as soon as its own networks, disks and seed
exist, whatever else is still being made; a network is removed as soon as the nodes on it are gone. A
need on a target with no action in the plan is already met. Everything else runs at once, so the
critical path is what libvirtd itself serialises (it starts and stops networks one at a time).
"""

from __future__ import annotations

from typing import Sequence


def prerequisites(actions: Sequence) -> list[frozenset[int]]:
    """For each action (by index), the indices of the actions that must finish before it starts."""
    by_target: dict[str, list[int]] = {}
    for i, a in enumerate(actions):
        by_target.setdefault(a.target, []).append(i)
    last_in_chain: dict[str, int] = {}
    out = []
    for i, a in enumerate(actions):
        pre = set()
        if a.chain_key in last_in_chain:
            pre.add(last_in_chain[a.chain_key])
        last_in_chain[a.chain_key] = i
        for target in a.needs:
            pre.update(j for j in by_target.get(target, ()) if j != i and actions[j].chain_key != a.chain_key)
        out.append(frozenset(pre))
    _acyclic(actions, out)
    return out


def dependents(prereqs: Sequence[frozenset[int]]) -> list[frozenset[int]]:
    """For each action, the actions that wait for it directly."""
    out: list[set[int]] = [set() for _ in prereqs]
    for i, pre in enumerate(prereqs):
        for j in pre:
            out[j].add(i)
    return [frozenset(s) for s in out]


def downstream(start: int, deps: Sequence[frozenset[int]]) -> set[int]:
    """Every action that waits, directly or not, for action `start` (not `start` itself)."""
    seen: set[int] = set()
    todo = list(deps[start])
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(deps[i])
    return seen


def priority(actions: Sequence) -> list[int]:
    """Indices in the order ready actions are handed to workers: by phase (networks and storage before
    domains: libvirtd starts networks one at a time, the critical path), then plan order."""
    return sorted(range(len(actions)), key=lambda i: (actions[i].phase, i))


def _acyclic(actions: Sequence, prereqs: Sequence[frozenset[int]]) -> None:
    state = [0] * len(prereqs)          # 0 new, 1 on the path, 2 finished
    for root in range(len(prereqs)):
        stack = [(root, iter(prereqs[root]))]
        if state[root]:
            continue
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state[nxt] == 1:
                raise ValueError(f"plan waits in a circle: {actions[nxt].describe()} and {actions[node].describe()}")
            elif state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(prereqs[nxt])))
