"""The dishonest casino (Durbin et al., 1998): a fair and a loaded die behind one hidden switch.

1. Simulate rolls from the true HMM (the loaded die shows a six half the time).
2. Decode with the true parameters: Viterbi path, posterior probability of the loaded die, the
   three best paths (k-best) and exact posterior samples (FFBS).
3. Learn the parameters back by Baum-Welch from a random start, several sequences in one padded
   batch, and decode again.

Run ``python examples/hmm_casino.py`` (``--smoke`` for a quick CI run).
"""

from __future__ import annotations

import argparse

import torch

from pgm.hmm import (
    CategoricalEmission,
    HiddenMarkovModel,
    fit,
    init_hmm,
    kbest,
    posterior,
    sample_states,
    viterbi,
)
from probforge.ops import make_generator

F64 = torch.float64


def casino() -> HiddenMarkovModel:
    """State 0 = fair die, state 1 = loaded die (a six with probability 1/2)."""
    fair = torch.full((6,), 1 / 6, dtype=F64)
    loaded = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1, 0.5], dtype=F64)
    return HiddenMarkovModel.from_probs(
        torch.tensor([0.5, 0.5], dtype=F64),
        torch.tensor([[0.95, 0.05], [0.10, 0.90]], dtype=F64),
        CategoricalEmission(torch.stack([fair, loaded]).log()),
    )


def main(n_rolls: int, n_sequences: int, seed: int) -> None:
    truth = casino()
    g = make_generator(seed)
    draw = truth.sample(n_rolls, n_sequences=n_sequences, generator=g)
    rolls, dice = draw.observations, draw.states
    # ragged batch: the sequences have different lengths
    lengths = torch.randint(n_rolls // 2, n_rolls + 1, (n_sequences,), generator=g)
    lengths[0] = n_rolls
    valid = torch.arange(n_rolls)[None, :] < lengths[:, None]
    print(f"{n_sequences} sequences of up to {n_rolls} rolls (faces 1-6 shown as 0-5)")
    print("rolls[0]:", "".join(str(int(r) + 1) for r in rolls[0, :60]))
    print("dice[0]: ", "".join("L" if int(d) else "F" for d in dice[0, :60]))

    v = viterbi(truth, rolls, lengths=lengths)
    post = posterior(truth, rolls, lengths=lengths)
    acc_v = float(((v.states == dice) & valid).sum() / valid.sum())
    acc_p = float((((post.state_probs[..., 1] > 0.5).long() == dice) & valid).sum() / valid.sum())
    print("viterbi: ", "".join("L" if int(d) else "F" for d in v.states[0, :60]))
    print(f"true parameters: Viterbi accuracy {acc_v:.3f}, posterior-decoding accuracy "
          f"{acc_p:.3f}, log p(rolls) = {float(post.log_likelihood.sum()):.2f}")
    top = kbest(truth, rolls[0, :30], 3)
    print("3 best paths of the first 30 rolls (log p(x, path)):")
    for r in range(3):
        path = "".join("L" if int(d) else "F" for d in top.states[r])
        print(f"  {path}  {float(top.log_prob[r]):.3f}")
    s = sample_states(truth, rolls[0], 200, generator=g)
    print(f"FFBS: 200 posterior paths; mean time loaded {float(s.float().mean()):.3f} "
          f"(posterior expectation {float(post.state_probs[0, :, 1].mean()):.3f})")

    start = init_hmm("categorical", rolls, 2, lengths=lengths, generator=make_generator(seed + 1),
                     n_symbols=6)
    res = fit(start, rolls, lengths=lengths, n_iter=200, tol=1e-4)
    m = res.model
    loaded = int(m.emission.log_probs[:, 5].argmax())
    order = [1 - loaded, loaded]
    print(f"Baum-Welch: {res.monitor.n_iter} iterations, converged={res.converged}, "
          f"log-likelihood {res.log_likelihood:.2f}")
    print("  learned transition (fair, loaded):",
          [[round(float(p), 3) for p in row] for row in m.transition_probs[order][:, order]])
    print("  learned p(six | loaded) =", round(float(m.emission.log_probs[loaded, 5].exp()), 3))
    v2 = viterbi(m, rolls, lengths=lengths).states
    v2 = torch.where(v2 >= 0, (v2 == loaded).long(), v2)
    acc = float(((v2 == dice) & valid).sum() / valid.sum())
    print(f"  Viterbi accuracy with the learned model: {acc:.3f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small, fast run for CI")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.smoke:
        main(300, 4, args.seed)
    else:
        main(2000, 20, args.seed)
