"""Which unchanged nodes the collapsed picture draws as one box: the regions away from every change.

networkx is imported only when a report is drawn, so that the command line starts without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .model import Edges, Node

if TYPE_CHECKING:
    import networkx as nx


def _quiet_regions(nodes: list[Node], edges: Edges) -> list[list[int]]:
    """Groups of two or more nodes, far from every change, that hang off the same drawn nodes."""
    import networkx as nx

    interesting = {n.index for n in nodes if n.state != "unchanged" or n.data_differs}
    near = set(interesting)
    for parent, child in edges:
        if parent in interesting:
            near.add(child)
        if child in interesting:
            near.add(parent)
    rest = nx.Graph()
    rest.add_nodes_from(n.index for n in nodes if n.index not in near)
    rest.add_edges_from((p, c) for p, c in edges if p not in near and c not in near)
    region = {i: r for r, members in enumerate(nx.connected_components(rest)) for i in members}
    anchors: dict[int, set[tuple[int, str]]] = {r: set() for r in region.values()}
    for parent, child in edges:
        if parent in region and child not in region:
            anchors[region[parent]].add((child, "down"))
        elif child in region and parent not in region:
            anchors[region[child]].add((parent, "up"))
    by_anchor: dict[frozenset[tuple[int, str]], list[int]] = {}
    for i, r in sorted(region.items()):
        by_anchor.setdefault(frozenset(anchors[r]), []).append(i)
    return [members for members in by_anchor.values() if len(members) > 1]


def _contracted(groups: list[list[int]], edges: Edges, count: int) -> nx.DiGraph:
    """The graph as drawn: each group one vertex ("g", group), every other node ("n", index)."""
    import networkx as nx

    member = {i: g for g, group in enumerate(groups) for i in group}
    contracted = nx.DiGraph()
    contracted.add_nodes_from(("g", g) if i in member else ("n", i) for i in range(count) for g in [member.get(i)])
    contracted.add_edges_from(
        (("g", member[p]) if p in member else ("n", p), ("g", member[c]) if c in member else ("n", c))
        for p, c in edges
        if not (p in member and c in member and member[p] == member[c])
    )
    return contracted


def _split_until_acyclic(groups: list[list[int]], edges: Edges, depth: dict[int, int], count: int) -> list[list[int]]:
    """Split the groups on a cycle of the contracted graph by depth, until drawing them closes none."""
    import networkx as nx

    while groups:
        try:
            cycle = nx.find_cycle(_contracted(groups, edges, count))
        except nx.NetworkXNoCycle:
            break
        # Boxes of nodes of one topological generation can never close a cycle, since every
        # edge leads to a later generation.
        broken = {end[1] for edge in cycle for end in edge[:2] if end[0] == "g"}
        kept = [g for i, g in enumerate(groups) if i not in broken]
        for i in sorted(broken):
            by_depth: dict[int, list[int]] = {}
            for member_index in groups[i]:
                by_depth.setdefault(depth[member_index], []).append(member_index)
            kept += [part for part in by_depth.values() if len(part) > 1 and part != groups[i]]
        groups = kept
    return groups


def collapse(nodes: list[Node], edges: Edges) -> list[list[int]]:
    """Groups of unchanged nodes to draw as one box each: the regions away from every change.

    A node stays drawn when it changed (code or data) or touches a node that did. The
    rest collapse: the connected regions among them that hang off the same drawn nodes
    (or off none) make one box. A box of one node stays a node, and a group that would
    draw a cycle is split by depth.
    """
    import networkx as nx

    groups = _quiet_regions(nodes, edges)
    dag = nx.DiGraph(edges)
    dag.add_nodes_from(range(len(nodes)))
    if not nx.is_directed_acyclic_graph(dag):
        # Base's edges and head's together can loop (a -> b before, b -> a after): draw every node.
        return []
    depth = {i: d for d, generation in enumerate(nx.topological_generations(dag)) for i in generation}
    return sorted(_split_until_acyclic(groups, edges, depth, len(nodes)), key=lambda g: g[0])
