"""`probforge tour` step of `pgm.hmm` (no subcommands: HMMs are used from Python)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from probforge.cli import TourStep

__all__ = ["TOUR_STEPS", "register"]


def register(subparsers: Any) -> None:
    """Add this package's subcommands to the ``probforge`` command line (none)."""


def _hmm_tour(out: Path, seed: int) -> list[str]:
    import torch

    from pgm.hmm import (
        CategoricalEmission,
        HiddenMarkovModel,
        fit,
        init_hmm,
        log_likelihood,
        posterior,
        viterbi,
    )
    from probforge.commands import write_json_atomic
    from probforge.ops import make_generator

    f64 = torch.float64
    casino = HiddenMarkovModel.from_probs(
        torch.tensor([0.5, 0.5], dtype=f64),
        torch.tensor([[0.95, 0.05], [0.10, 0.90]], dtype=f64),
        CategoricalEmission(torch.tensor([[1 / 6] * 6, [0.1] * 5 + [0.5]], dtype=f64).log()),
    )
    draw = casino.sample(400, n_sequences=4, generator=make_generator(seed))
    x, z = draw.observations, draw.states
    v = viterbi(casino, x)
    post = posterior(casino, x)
    start = init_hmm("categorical", x, 2, generator=make_generator(seed + 1), n_symbols=6)
    res = fit(start, x, n_iter=100, tol=1e-3)
    em = res.model.emission
    assert isinstance(em, CategoricalEmission)
    loaded = int(em.log_probs[:, 5].argmax())
    long = casino.sample(100_000, generator=make_generator(seed + 2)).observations
    ll_long = float(log_likelihood(casino, long))
    result = {
        "viterbi_accuracy": float((v.states == z).float().mean()),
        "log_likelihood": float(post.log_likelihood.sum()),
        "baum_welch_iterations": res.monitor.n_iter,
        "learned_p_six_loaded": float(em.log_probs[loaded, 5].exp()),
        "log_likelihood_100k": ll_long,
    }
    write_json_atomic(out / "hmm.json", result)
    return [
        "Dishonest casino HMM (fair / loaded die), 4 sequences x 400 rolls in one batch:",
        f"  Viterbi accuracy {result['viterbi_accuracy']:.3f}; log p(rolls) = "
        f"{result['log_likelihood']:.2f}",
        f"  Baum-Welch from a k-means start: {result['baum_welch_iterations']} iterations, "
        f"p(six | loaded) = {result['learned_p_six_loaded']:.3f} (truth 0.5)",
        f"  one sequence of 100,000 rolls: log p = {ll_long:.1f} (log-depth parallel scan)",
        f"wrote {out / 'hmm.json'}; more in examples/hmm_casino.py, hmm_regimes.py, "
        "hmm_posteriordb.py",
    ]


TOUR_STEPS = [
    TourStep("hmm", 30, "Hidden Markov models: batched decoding, Baum-Welch, long sequences",
             _hmm_tour),
]
