"""pgmpy oracles: exact answers for the bundled bnlearn networks, computed by pgmpy itself.

Every function takes a ``pgmpy`` ``DiscreteBayesianNetwork`` (load one with :func:`load_example`,
a quiet wrapper of ``pgmpy.utils.get_example_model``, which works offline, and which by default
renormalises the CPD columns: see its docstring) and evidence as ``{variable: state name}``;
answers use STATE NAMES, never indices.

- :func:`pgmpy_marginals`: single-variable posteriors, one ``VariableElimination.query`` each.
- :func:`pgmpy_bp_marginals`: the same from one calibration of pgmpy's ``BeliefPropagation``.
- :func:`pgmpy_map`: a MAP assignment (``VariableElimination.map_query`` on small networks,
  max-product calibration of the junction tree with a traceback on larger ones).
- :func:`pgmpy_log_evidence`: ``log P(evidence)`` by the chain rule over VE queries.
- :func:`pgmpy_log_joint`: ``log P(full assignment)`` from the CPDs (to compare MAP values,
  which is robust to ties where comparing assignments is not).
- :func:`random_evidence` / :func:`sample_evidence_rows`: evidence drawn by ancestral sampling
  from the network itself (so it has positive probability), deterministic given the seed.

pgmpy quirks handled here (pgmpy 1.1.x): ``BeliefPropagation.query`` rebuilds the junction tree
on every call and cannot reuse a calibration, so evidence is entered into a copy of the clique
potentials (zeroing the other states) and the tree is calibrated once; pgmpy's own
``calibrate()`` stops when neighbouring beliefs agree to ``allclose`` (rtol 1e-5), so the oracle
drives pgmpy's message update with an exact collect/distribute schedule instead (the benchmark
times pgmpy's ``calibrate()`` as shipped); pgmpy's default triangulation (heuristic H6) yields
cliques of hundreds of TiB on hepar2, so the oracle's junction tree uses a greedy min-fill order;
``map_query()`` without ``variables`` ignores the evidence, so variables are always passed.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import networkx as nx
import numpy as np
from numpy.random import PCG64, Generator

with warnings.catch_warnings():  # pgmpy 1.1 warns about its own deprecations on import
    warnings.simplefilter("ignore", FutureWarning)
    from pgmpy.factors.discrete import DiscreteFactor
    from pgmpy.inference import BeliefPropagation, VariableElimination
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.utils import get_example_model

Evidence = dict[str, str]
Marginals = dict[str, dict[str, float]]
Triangulation = Literal["minfill", "pgmpy"]
Schedule = Literal["two_pass", "pgmpy"]

# Above this many joint states of the MAP variables, VariableElimination.map_query (which
# materialises their joint table) is replaced by max-product calibration.
VE_MAP_MAX_STATES = 1 << 22


def quiet_pgmpy() -> None:
    """Silence pgmpy's logger (it warns on every BIF read and pruning step)."""
    logging.getLogger("pgmpy").setLevel(logging.ERROR)


quiet_pgmpy()


def load_example(name: str, normalize: bool = True) -> DiscreteBayesianNetwork:
    """``pgmpy.utils.get_example_model(name)`` without its deprecation warning (offline).

    ``normalize``: return :func:`normalized` CPDs. The bnlearn files' CPD columns sum to 1 only
    within 3e-7 (alarm, hepar2, barley, ...), and then answers depend on the algorithm at the
    1e-8 level: VE prunes barren nodes (as if their columns summed to 1), junction-tree BP
    multiplies every CPD in. With renormalised columns every exact method agrees to ~1e-15.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = get_example_model(name)
    return normalized(model) if normalize else model


def normalized(model: DiscreteBayesianNetwork) -> DiscreteBayesianNetwork:
    """A copy of ``model`` whose CPD columns are rescaled to sum to 1 (pgmpy's normalize)."""
    copy = model.copy()
    for cpd in copy.get_cpds():
        cpd.normalize(inplace=True)
    return copy


def cpd_normalization_error(model: DiscreteBayesianNetwork) -> float:
    """Largest ``|sum of a CPD column - 1|`` in ``model``."""
    worst = 0.0
    for cpd in model.get_cpds():
        values = np.asarray(cpd.values, dtype=np.float64).reshape(int(cpd.cardinality[0]), -1)
        worst = max(worst, float(np.abs(values.sum(axis=0) - 1.0).max()))
    return worst


def state_names(model: DiscreteBayesianNetwork, var: str) -> list[str]:
    """States of ``var`` in CPD order."""
    return list(model.get_cpds(var).state_names[var])


def _point_mass(model: DiscreteBayesianNetwork, var: str, state: str) -> dict[str, float]:
    return {s: 1.0 if s == state else 0.0 for s in state_names(model, var)}


def _check_evidence(model: DiscreteBayesianNetwork, evidence: Mapping[str, str]) -> None:
    for var, state in evidence.items():
        if var not in model.nodes():
            raise KeyError(f"evidence variable {var!r} is not in the model")
        if state not in state_names(model, var):
            raise KeyError(f"{state!r} is not a state of {var!r}: {state_names(model, var)}")


def _query_variables(
    model: DiscreteBayesianNetwork, evidence: Mapping[str, str], variables: Iterable[str] | None
) -> list[str]:
    if variables is None:
        return [v for v in model.nodes() if v not in evidence]
    return list(variables)


# ----------------------------------------------------------------------------------------------
# Variable elimination


def pgmpy_marginals(
    model: DiscreteBayesianNetwork,
    evidence: Mapping[str, str] | None = None,
    variables: Iterable[str] | None = None,
) -> Marginals:
    """Exact ``P(v | evidence)`` for each variable, one ``VariableElimination.query`` per variable.

    ``variables`` defaults to every non-evidence variable; an evidence variable listed
    explicitly gets its point mass (pgmpy refuses to query it).
    """
    evidence = dict(evidence or {})
    _check_evidence(model, evidence)
    ve = VariableElimination(model)
    out: Marginals = {}
    for var in _query_variables(model, evidence, variables):
        if var in evidence:
            out[var] = _point_mass(model, var, evidence[var])
            continue
        phi = ve.query([var], evidence=evidence or None, show_progress=False)
        out[var] = _factor_to_dict(phi, var)
    return out


def _factor_to_dict(phi: DiscreteFactor, var: str) -> dict[str, float]:
    values = np.asarray(phi.values, dtype=np.float64).reshape(-1)
    return {str(s): float(p) for s, p in zip(phi.state_names[var], values, strict=True)}


def pgmpy_log_evidence(model: DiscreteBayesianNetwork, evidence: Mapping[str, str]) -> float:
    """``log P(evidence)``: chain rule ``sum_i log P(e_i | e_1..e_{i-1})``, each term one VE query.

    ``-inf`` when the evidence is impossible (pgmpy then returns NaNs, which are caught).
    """
    evidence = dict(evidence)
    _check_evidence(model, evidence)
    ve = VariableElimination(model)
    total, seen = 0.0, {}
    for var, state in evidence.items():
        with np.errstate(invalid="ignore", divide="ignore"):
            phi = ve.query([var], evidence=seen or None, show_progress=False)
        p = _factor_to_dict(phi, var)[state]
        if not p > 0.0:  # also catches NaN from a zero normaliser
            return -math.inf
        total += math.log(p)
        seen[var] = state
    return total


def pgmpy_log_joint(model: DiscreteBayesianNetwork, assignment: Mapping[str, str]) -> float:
    """``log P(x)`` of a full assignment ``x`` (every variable), summed from the CPD entries."""
    missing = set(model.nodes()) - set(assignment)
    if missing:
        raise KeyError(f"assignment misses {sorted(missing)}")
    total = 0.0
    for cpd in model.get_cpds():
        index = tuple(cpd.get_state_no(v, assignment[v]) for v in cpd.variables)
        p = float(np.asarray(cpd.values)[index])
        if p <= 0.0:
            return -math.inf
        total += math.log(p)
    return total


# ----------------------------------------------------------------------------------------------
# Belief propagation on a junction tree


def min_fill_order(model: DiscreteBayesianNetwork) -> list[str]:
    """Greedy min-fill elimination order of the moral graph (ties: smaller clique table, name).

    pgmpy's own ``MinFill`` scores fill-in on the directed graph and never adds fill edges while
    simulating elimination, which yields cliques with up to 1e18 entries on these networks.
    """
    graph = nx.Graph(model.moralize().edges())
    graph.add_nodes_from(model.nodes())
    card = model.get_cardinality()
    order: list[str] = []
    while graph.number_of_nodes():

        def cost(v: str) -> tuple[int, int, str]:
            nb = list(graph.neighbors(v))
            fill = sum(1 for i, a in enumerate(nb) for b in nb[i + 1 :] if not graph.has_edge(a, b))
            return fill, math.prod(int(card[u]) for u in nb) * int(card[v]), v

        var = min(graph.nodes(), key=cost)
        nb = list(graph.neighbors(var))
        graph.add_edges_from((a, b) for i, a in enumerate(nb) for b in nb[i + 1 :])
        graph.remove_node(var)
        order.append(var)
    return order


def build_belief_propagation(
    model: DiscreteBayesianNetwork, triangulation: Triangulation = "minfill"
) -> BeliefPropagation:
    """pgmpy ``BeliefPropagation`` on the junction tree of ``model``.

    ``"pgmpy"``: ``BeliefPropagation(model)`` as shipped (heuristic H6 triangulation; can ask for
    petabytes). ``"minfill"``: the moral graph triangulated along :func:`min_fill_order` with
    pgmpy's ``triangulate(order=...)``, then pgmpy's ``to_junction_tree()``.
    """
    if triangulation == "pgmpy":
        return BeliefPropagation(model)
    if triangulation != "minfill":
        raise ValueError(f"unknown triangulation {triangulation!r}")
    markov = model.to_markov_model()
    # pgmpy's triangulate() walks a graph built from the edges alone: skip isolated variables
    connected = {v for edge in markov.edges() for v in edge}
    markov.triangulate(order=[v for v in min_fill_order(model) if v in connected], inplace=True)
    # pgmpy's to_junction_tree() fails on a disconnected moral graph (andes has isolated
    # variables): bridge the components with one edge each, which keeps the graph chordal
    components = sorted(sorted(c) for c in nx.connected_components(markov))
    for component in components[1:]:
        markov.add_edge(components[0][0], component[0])
    return BeliefPropagation(markov.to_junction_tree())


def max_clique_states(bp: BeliefPropagation) -> int:
    """Entries of the largest clique table of ``bp``'s junction tree."""
    return max(int(np.prod(f.cardinality)) for f in bp.junction_tree.factors)


def _entered_potentials(
    bp: BeliefPropagation, evidence: Mapping[str, str]
) -> dict[tuple[str, ...], DiscreteFactor]:
    """Clique potentials with evidence entered: the other states of each observed variable zeroed
    in the smallest clique that holds it (the potentials keep their scopes, as pgmpy requires)."""
    jt = bp.junction_tree
    potentials = {clique: jt.get_factors(clique) for clique in jt.nodes()}
    for var, state in evidence.items():
        holders = [c for c in potentials if var in c]
        if not holders:
            raise KeyError(f"evidence variable {var!r} is not in the junction tree")
        clique = min(holders, key=lambda c: (int(np.prod(potentials[c].cardinality)), c))
        phi = potentials[clique].copy()
        axis = phi.variables.index(var)
        keep = phi.get_state_no(var, state)
        index: list[Any] = [slice(None)] * phi.values.ndim
        index[axis] = [i for i in range(phi.values.shape[axis]) if i != keep]
        phi.values[tuple(index)] = 0.0
        potentials[clique] = phi
    return potentials


def calibrate(
    bp: BeliefPropagation,
    evidence: Mapping[str, str] | None = None,
    schedule: Schedule = "two_pass",
    operation: Literal["marginalize", "maximize"] = "marginalize",
) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Calibrate ``bp`` with ``evidence`` entered; beliefs end up in ``bp.clique_beliefs``.

    ``"pgmpy"``: pgmpy's own ``calibrate()`` / ``max_calibrate()`` (loops until neighbouring
    beliefs are ``allclose``: rtol 1e-5, atol 1e-8). ``"two_pass"``: pgmpy's message update
    (``_update_beliefs``) on an exact collect-then-distribute schedule from a fixed root.
    Returns the tree's BFS edges (parent, child) from that root, for tracebacks.
    """
    jt = bp.junction_tree
    potentials = _entered_potentials(bp, dict(evidence or {}))
    root = min(jt.nodes())
    edges = list(nx.bfs_edges(jt, root)) if jt.number_of_edges() else []
    with np.errstate(divide="ignore", invalid="ignore"):
        if schedule == "pgmpy":
            saved = jt.factors
            jt.factors = list(potentials.values())
            try:
                if operation == "marginalize":
                    bp.calibrate()
                else:
                    bp.max_calibrate()
            finally:
                jt.factors = saved
        elif schedule == "two_pass":
            bp.clique_beliefs = dict(potentials)
            bp.sepset_beliefs = {frozenset(edge): None for edge in jt.edges()}
            for parent, child in reversed(edges):  # collect towards the root
                bp._update_beliefs(child, parent, operation=operation)
            for parent, child in edges:  # distribute from the root
                bp._update_beliefs(parent, child, operation=operation)
        else:
            raise ValueError(f"unknown schedule {schedule!r}")
    return [(tuple(a), tuple(b)) for a, b in edges]


def home_cliques(bp: BeliefPropagation) -> dict[str, tuple[str, ...]]:
    """For each variable, the smallest clique (by table size) that contains it."""
    size = {c: int(np.prod(bp.junction_tree.get_factors(c).cardinality)) for c in bp.get_cliques()}
    home: dict[str, tuple[str, ...]] = {}
    for clique in sorted(size, key=lambda c: (size[c], c)):
        for var in clique:
            home.setdefault(var, clique)
    return home


def calibrated_marginals(
    bp: BeliefPropagation,
    evidence: Mapping[str, str] | None = None,
    variables: Iterable[str] | None = None,
    schedule: Schedule = "two_pass",
    home: Mapping[str, tuple[str, ...]] | None = None,
) -> Marginals:
    """Calibrate ``bp`` once with ``evidence`` and read every requested single-variable marginal
    off its home clique (``variables`` defaults to all non-evidence variables; observed
    variables come out as point masses)."""
    evidence = dict(evidence or {})
    calibrate(bp, evidence, schedule)
    home = home if home is not None else home_cliques(bp)
    if variables is None:
        variables = [v for v in home if v not in evidence]
    out: Marginals = {}
    for var in variables:
        belief = bp.clique_beliefs[home[var]]
        others = [v for v in belief.variables if v != var]
        phi = belief.marginalize(others, inplace=False) if others else belief.copy()
        total = float(np.sum(phi.values))
        if not total > 0.0:
            raise ValueError(f"evidence {evidence} has probability zero")
        values = np.asarray(phi.values, dtype=np.float64) / total
        out[var] = {str(s): float(p) for s, p in zip(phi.state_names[var], values, strict=True)}
    return out


def pgmpy_bp_marginals(
    model: DiscreteBayesianNetwork,
    evidence: Mapping[str, str] | None = None,
    variables: Iterable[str] | None = None,
    *,
    triangulation: Triangulation = "minfill",
    schedule: Schedule = "two_pass",
) -> Marginals:
    """Exact marginals from ONE calibration of pgmpy's ``BeliefPropagation`` (see
    :func:`build_belief_propagation` and :func:`calibrate` for the options)."""
    evidence = dict(evidence or {})
    _check_evidence(model, evidence)
    bp = build_belief_propagation(model, triangulation)
    variables = _query_variables(model, evidence, variables)
    return calibrated_marginals(bp, evidence, variables, schedule)


# ----------------------------------------------------------------------------------------------
# MAP


def pgmpy_map(
    model: DiscreteBayesianNetwork,
    evidence: Mapping[str, str] | None = None,
    method: Literal["auto", "ve", "max_product"] = "auto",
) -> dict[str, str]:
    """A MAP assignment ``argmax_x P(x | evidence)`` of all non-evidence variables (state names).

    ``"ve"``: ``VariableElimination.map_query`` (materialises the joint of the MAP variables, so
    only for small networks). ``"max_product"``: max-calibration of the min-fill junction tree
    (pgmpy's message update, exact schedule) and a traceback from the root, each clique choosing
    its argmax consistent with its parent; on ties this still returns *a* MAP assignment (compare
    values with :func:`pgmpy_log_joint`, not assignments). ``"auto"``: ``"ve"`` while the joint
    has at most ``VE_MAP_MAX_STATES`` entries.
    """
    evidence = dict(evidence or {})
    _check_evidence(model, evidence)
    free = [v for v in model.nodes() if v not in evidence]
    if method == "auto":
        card = model.get_cardinality()
        states = math.prod(int(card[v]) for v in free)
        method = "ve" if states <= VE_MAP_MAX_STATES else "max_product"
    if method == "ve":
        ve = VariableElimination(model)
        result = ve.map_query(variables=free, evidence=evidence or None, show_progress=False)
        return {str(k): str(v) for k, v in result.items()}
    if method != "max_product":
        raise ValueError(f"unknown method {method!r}")
    bp = build_belief_propagation(model, "minfill")
    edges = calibrate(bp, evidence, "two_pass", operation="maximize")
    root = min(bp.junction_tree.nodes())
    assignment: dict[str, str] = {}
    for clique in [root, *(child for _, child in edges)]:
        belief = bp.clique_beliefs[clique]
        fixed = [(v, assignment[v]) for v in belief.variables if v in assignment]
        if len(fixed) == len(belief.variables):
            continue
        phi = belief.reduce(fixed, inplace=False) if fixed else belief
        values = np.asarray(phi.values)
        if not values.max() > 0.0:
            raise ValueError(f"evidence {evidence} has probability zero")
        best = np.unravel_index(int(np.argmax(values)), values.shape)
        for var, i in zip(phi.variables, best, strict=True):
            assignment[var] = str(phi.state_names[var][int(i)])
    return {v: assignment[v] for v in free}


# ----------------------------------------------------------------------------------------------
# Evidence by ancestral sampling


def forward_sample(
    model: DiscreteBayesianNetwork,
    n: int,
    rng: Generator,
    variables: Sequence[str] | None = None,
) -> dict[str, np.ndarray]:
    """``n`` ancestral samples (state indices, CPD order) of ``variables`` and their ancestors.

    Variables are visited in lexicographic topological order and each draws ``n`` uniforms,
    so the result depends only on the model, ``variables`` and the generator's state.
    """
    needed = set(model.nodes()) if variables is None else set(variables)
    for var in list(needed):
        needed |= nx.ancestors(model, var)
    samples: dict[str, np.ndarray] = {}
    for var in nx.lexicographical_topological_sort(model.subgraph(needed)):
        cpd = model.get_cpds(var)
        parents = list(cpd.variables[1:])
        table = np.asarray(cpd.values, dtype=np.float64).reshape(int(cpd.cardinality[0]), -1)
        if parents:
            cards = [int(c) for c in cpd.cardinality[1:]]
            column = np.ravel_multi_index([samples[p] for p in parents], cards)
        else:
            column = np.zeros(n, dtype=np.int64)
        cum = np.cumsum(table[:, column].T, axis=1)  # (n, card)
        u = rng.random(n) * cum[:, -1]
        drawn = (u[:, None] >= cum).sum(axis=1)
        samples[var] = np.minimum(drawn, table.shape[0] - 1)
    return samples


def random_evidence(model: DiscreteBayesianNetwork, k: int, seed: int = 0) -> Evidence:
    """``k`` distinct evidence variables (uniform over the sorted names) with their states taken
    from one ancestral sample of the network, all from ``Generator(PCG64(seed))``."""
    rng = Generator(PCG64(seed))
    names = sorted(model.nodes())
    if not 0 <= k <= len(names):
        raise ValueError(f"k={k} but the model has {len(names)} variables")
    chosen = sorted(names[int(i)] for i in rng.choice(len(names), size=k, replace=False))
    sample = forward_sample(model, 1, rng, chosen)
    return {v: state_names(model, v)[int(sample[v][0])] for v in chosen}


def sample_evidence_rows(
    model: DiscreteBayesianNetwork, variables: Sequence[str], n: int, seed: int = 0
) -> dict[str, list[str]]:
    """``n`` rows of evidence on ``variables`` (column per variable, state names), each row one
    ancestral sample of the network from ``Generator(PCG64(seed))``."""
    sample = forward_sample(model, n, Generator(PCG64(seed)), list(variables))
    return {v: [state_names(model, v)[int(i)] for i in sample[v]] for v in variables}
