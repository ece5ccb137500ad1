"""The core layer's tour step: the semiring contraction on a three-variable example."""

from __future__ import annotations

import json
from pathlib import Path

from probforge.cli import TourStep

__all__ = ["TOUR_STEPS", "write_json_atomic"]


def write_json_atomic(path: Path, payload: object) -> None:
    """Write ``payload`` as JSON to ``path`` atomically (see :mod:`probforge.files`)."""
    from probforge.files import atomic_write_text  # imports torch: not when the parser is built

    atomic_write_text(path, json.dumps(payload, indent=2))


def _core_tour(out: Path, seed: int) -> list[str]:
    import torch

    from probforge.ops import contract, contract_argmax, contract_sample, make_generator

    # Rain -> Sprinkler, (Rain, Sprinkler) -> WetGrass, as three log-space factors.
    p = torch.tensor
    rain = p([0.8, 0.2], dtype=torch.float64).log()
    sprinkler = p([[0.6, 0.4], [0.99, 0.01]], dtype=torch.float64).log()
    wet = p([[[1.0, 0.0], [0.1, 0.9]], [[0.2, 0.8], [0.01, 0.99]]], dtype=torch.float64).log()
    factors = [rain, sprinkler, wet]
    scopes = [("R",), ("R", "S"), ("R", "S", "W")]
    p_wet = contract(factors, scopes, ["W"]).exp()
    # Condition on W = 1 by slicing the factor; p(R | W=1) = p(R, W=1) / p(W=1).
    ev = [rain, sprinkler, wet[..., 1]]
    ev_scopes = [("R",), ("R", "S"), ("R", "S")]
    joint = contract(ev, ev_scopes, ["R"])
    p_rain_given_wet = (joint - contract(ev, ev_scopes)).exp()
    best = contract_argmax(factors, scopes)
    draws = contract_sample(
        ev, ev_scopes, sample_shape=(20000,), generator=make_generator(seed)
    ).assignment["R"]
    result = {
        "p_wet": p_wet.tolist(),
        "p_rain_given_wet": p_rain_given_wet.tolist(),
        "map": {v: int(a) for v, a in best.assignment.items()},
        "map_prob": float(best.value.exp()),
        "sampled_p_rain_given_wet": float(draws.double().mean()),
    }
    write_json_atomic(out / "core.json", result)
    return [
        "Rain -> Sprinkler -> WetGrass as log-space factors, contracted by probforge.ops.contract",
        f"p(WetGrass = yes)             = {p_wet[1]:.6f}",
        f"p(Rain = yes | WetGrass = yes) = {p_rain_given_wet[1]:.6f} (exact, log semiring)",
        f"                                ~ {result['sampled_p_rain_given_wet']:.4f} "
        "(20,000 posterior draws, sample semiring)",
        f"most probable state (max semiring): {result['map']} with p = {result['map_prob']:.4f}",
        f"wrote {out / 'core.json'}",
    ]


TOUR_STEPS = [
    TourStep("core", 0, "semiring contraction: marginals, conditionals, MAP, exact sampling",
             _core_tour),
]
