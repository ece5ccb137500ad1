"""Boltzmann machines: exact log Z, Gibbs sampling, temperature, simulated annealing and learning.

Implements NNDL section 12.1 with ``generative.energy.boltzmann`` and ``.annealing``. A small
machine shaped like Fig. 12.1 (3 visible and 3 hidden binary units, fully connected) has the
energy (12.2) and Boltzmann distribution (12.1); its partition function is computed exactly by
enumerating the 64 states, the full conditional (12.5) is checked against ratios of enumerated
probabilities, and single-site Gibbs sampling with (12.5), run by the ``samplers`` Gibbs kernel,
is compared with the exact distribution by total variation. The temperature limits follow: at a
high ``T`` every conditional tends to 0.5, and as ``T -> 0`` Gibbs sampling becomes the
deterministic rule (12.15), which is a Hopfield network's asynchronous update (8.32) under the
map ``s = 2x - 1``. Simulated annealing (section 12.1.2) with a geometric cooling schedule then
finds the enumerated minimum-energy state of a 16-unit machine where greedy descent stops in
local minima; its energy traces are plotted in the style of Fig. 12.2 (Hopfield descent monotone,
Gibbs sampling at a fixed temperature fluctuating, annealing settling into a low minimum). Finally
the learning rule (12.24)-(12.26), with a clamped (positive) phase and a free (negative) phase
sampled by persistent Gibbs chains, fits a small data set of binary patterns through hidden
units; the exact log-likelihood (12.16)-(12.17), computed by enumeration, rises towards its
maximum (minus the data's entropy), next to training with the exact gradient.

Run ``python examples/ch12_boltzmann_machine.py`` (a minute or two) or with ``--smoke``
(seconds). ``--out DIR`` writes ``energy_traces.png`` (needs matplotlib).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor

from generative.energy.annealing import geometric_schedule, simulated_annealing
from generative.energy.boltzmann import (
    BoltzmannMachine,
    boltzmann_learning_step,
    enumerate_states,
    init_chains,
)
from generative.energy.hopfield import HopfieldNetwork
from probforge.ops.random import make_generator
from samplers.run import sample

D = torch.float64

#: Learning rate of (12.26).
LR = 0.1

#: The learning data: four patterns over six visible units, each as frequent as the others.
PATTERNS = (
    (1, 1, 1, 0, 0, 0),
    (0, 0, 0, 1, 1, 1),
    (1, 0, 1, 0, 1, 0),
    (0, 1, 0, 1, 0, 1),
)


def random_machine(num_units: int, num_visible: int, g: torch.Generator,
                   temperature: float = 1.0) -> BoltzmannMachine:
    """A machine with N(0, 1) pair weights and N(0, 0.5^2) biases, the first units visible."""
    a = torch.randn(num_units, num_units, generator=g, dtype=D).triu(1)
    bias = 0.5 * torch.randn(num_units, generator=g, dtype=D)
    visible = torch.arange(num_units) < num_visible
    return BoltzmannMachine.from_weights(a + a.T, bias, visible, temperature=temperature)


def hopfield_equivalent(bm: BoltzmannMachine) -> HopfieldNetwork:
    """The Hopfield network whose update (8.32) is the zero-temperature rule (12.15) of ``bm``.

    With ``x = (s + 1) / 2`` the local field ``sum_j w_ij x_j + b_i`` is half of
    ``sum_j w_ij s_j + (W 1 + 2 b)_i``, so the weights stay ``W``, the biases become
    ``W 1 + 2 b``, and the energies agree up to scale and shift: ``E_BM = E_H / 4 + c``.
    """
    w, b = bm.weight.detach(), bm.bias.detach()
    return HopfieldNetwork(w, w.sum(-1) + 2 * b)


def state_codes(x: Tensor) -> Tensor:
    """The row of each 0/1 state in :func:`enumerate_states` order (first unit most significant)."""
    k = x.shape[-1]
    powers = 2 ** torch.arange(k - 1, -1, -1, device=x.device)
    return (x.long() * powers).sum(-1)


def total_variation(p: Tensor, q: Tensor) -> float:
    """``1/2 sum |p - q|`` of two probability vectors."""
    return 0.5 * float((p - q).abs().sum())


def exact_and_gibbs(g: torch.Generator, chains: int, draws: int) -> None:
    """Sections 1-3: exact log Z, (12.5), Gibbs sampling against the truth, temperature."""
    bm = random_machine(6, 3, g)
    states = enumerate_states(6)
    with torch.no_grad():
        log_z = bm.log_partition()
        log_p = bm.log_prob(states)
        # (12.5) against the enumerated joint:
        # p(x_i = 1 | x_-i) = p(x with x_i = 1) / (p(x with x_i = 0) + p(x with x_i = 1))
        worst = 0.0
        for i in range(6):
            on, off = states.clone(), states.clone()
            on[:, i], off[:, i] = 1, 0
            p_on, p_off = bm.log_prob(on).exp(), bm.log_prob(off).exp()
            diff = bm.conditional_prob(states, i) - p_on / (p_on + p_off)
            worst = max(worst, float(diff.abs().max()))
    print("1. A Boltzmann machine like Fig. 12.1: 3 visible + 3 hidden units, N(0, 1) weights")
    print(f"   log Z by enumerating the 64 states = {float(log_z):.6f}; "
          f"sum of p(x) = {float(log_p.exp().sum()):.12f}")
    print(f"   conditional (12.5) vs ratios of enumerated probabilities: max |diff| = "
          f"{worst:.1e}")
    p_exact = log_p.exp()
    start = torch.zeros(chains, 6, dtype=D)
    res = sample(bm.gibbs_kernel(), None, start, num_draws=draws, num_warmup=50, generator=g)
    x = res["x"].reshape(-1, 6)
    p_gibbs = torch.bincount(state_codes(x), minlength=64).to(D) / x.shape[0]
    iid = torch.multinomial(p_exact, x.shape[0], replacement=True, generator=g)
    p_iid = torch.bincount(iid, minlength=64).to(D) / x.shape[0]
    vis = state_codes(x[:, :3])
    pv_gibbs = torch.bincount(vis, minlength=8).to(D) / x.shape[0]
    with torch.no_grad():
        pv_exact = bm.log_marginal_visible(enumerate_states(3)).exp()
    print(f"2. Single-site Gibbs sampling (12.5), samplers' Gibbs kernel: {chains} chains x "
          f"{draws} draws after 50 warm-up sweeps")
    print(f"   {'distribution':>22} {'TV(Gibbs, exact)':>17} {'TV(iid, exact)':>15}")
    print(f"   {'p(x), 64 states':>22} {total_variation(p_gibbs, p_exact):>17.4f} "
          f"{total_variation(p_iid, p_exact):>15.4f}")
    print(f"   {'p(v), 8 visible states':>22} {total_variation(pv_gibbs, pv_exact):>17.4f}")
    print("   (TV(iid, exact): the sampling noise of as many independent exact draws)")

    w, b = bm.weight.detach(), bm.bias.detach()
    with torch.no_grad():
        smallest = float(bm.local_fields(states).abs().min())
    print("3. Temperature limits of (12.5) over all 64 states and 6 units (|p - rule| shrinks "
          f"like exp(-|field| / T); smallest |field| = {smallest:.2e})")
    for temp in (1000.0, 1.0, 1e-3, 1e-6):
        hot = BoltzmannMachine.from_weights(w, b, bm.visible, temperature=temp)
        with torch.no_grad():
            probs = hot.conditional_probs(states)
            rule = (hot.local_fields(states) >= 0).to(D)  # (12.15)
        print(f"   T = {temp:>7g}: max |p - 0.5| = {float((probs - 0.5).abs().max()):.4f}, "
              f"max |p - rule (12.15)| = {float((probs - rule).abs().max()):.4f}")
    cold = BoltzmannMachine.from_weights(w, b, bm.visible, temperature=1e-6)
    net = hopfield_equivalent(bm)
    swept = cold.gibbs_sweep(states, generator=g)
    hop = net.update(2 * states - 1, order="fixed")
    same = int(((swept * 2 - 1) == hop).all(-1).sum())
    print(f"   T = 1e-06 Gibbs sweep vs Hopfield asynchronous update (s = 2x - 1, fixed order): "
          f"{same}/64 states give the same result")


def annealing(g: torch.Generator, num_units: int, chains: int, steps: int,
              out: Path | None) -> None:
    """Section 4: simulated annealing finds the enumerated global minimum; Fig. 12.2 traces."""
    bm = random_machine(num_units, num_units, g)
    states = enumerate_states(num_units)
    with torch.no_grad():
        energies = bm.energy(states)
        fields = bm.local_fields(states)
    e_min = float(energies.min())
    x_min = states[int(energies.argmin())]
    # local minima: no single flip lowers the energy (x_i = 1 where the field is >= 0, else 0)
    local = ((states == 1) & (fields >= 0) | (states == 0) & (fields <= 0)).all(-1)
    minima = energies[local].sort().values
    schedule = geometric_schedule(3.0, 0.05, steps)
    start = (torch.rand(chains, num_units, generator=g) < 0.5).to(D)
    res = simulated_annealing(bm, schedule, initial=start, generator=g)

    def at_min(e: Tensor) -> Tensor:
        return (e - e_min).abs() < 1e-9

    found = at_min(res.best_energies)
    overall = int(res.best_energies.argmin())
    argmin_ok = bool(found[overall]) and bool((res.best_states[overall] == x_min).all())
    # greedy descent: the zero-temperature rule (12.15), i.e. the equivalent Hopfield network
    net = hopfield_equivalent(bm)
    greedy = net.retrieve(2 * start - 1, order="random", generator=g)
    with torch.no_grad():
        e_greedy = bm.energy((greedy.states + 1) / 2)
    greedy_found = at_min(e_greedy)
    fixed = simulated_annealing(bm, [1.0] * steps, initial=start, generator=g)
    print(f"4. Energy minimisation, {num_units} units ({2 ** num_units} states enumerated), "
          f"{chains} chains from the same random starts")
    print(f"   enumerated minimum energy {e_min:.4f}; {int(local.sum())} local minima, the next "
          f"lowest at {float(minima[1]) if len(minima) > 1 else float('nan'):.4f}")
    print("   share of chains at the global minimum:")
    print(f"   {'method':>40} {'final state':>11} {'best visited':>12} {'mean final E':>12}")
    rows = (("greedy descent (12.15) = Hopfield", greedy_found, greedy_found, e_greedy),
            ("Gibbs sampling at T = 1", at_min(fixed.energies[-1]), at_min(fixed.best_energies),
             fixed.energies[-1]),
            (f"annealing, geometric, {steps} steps 3 -> 0.05", at_min(res.energies[-1]), found,
             res.energies[-1]))
    for name, final, best, e_final in rows:
        print(f"   {name:>40} {float(final.double().mean()):>11.1%} "
              f"{float(best.double().mean()):>12.1%} {float(e_final.mean()):>12.4f}")
    print(f"   best state of all annealing chains is the enumerated minimiser: {argmin_ok}")
    if out is None:
        return
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("   matplotlib is not installed: energy_traces.png skipped")
        return
    # Hopfield energies in Boltzmann units: E_BM = E_H / 4 + c, c fixed by the start state.
    with torch.no_grad():
        shift = float(bm.energy(start[:1])[0] - net.energy(2 * start[:1] - 1)[0] / 4)
    hop = (greedy.energies[:, 0] / 4 + shift).tolist()
    hop += [hop[-1]] * (steps + 1 - len(hop))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(hop, label="Hopfield / greedy (12.15)", drawstyle="steps-post")
    ax.plot(fixed.energies[:, 0].tolist(), label="Gibbs at T = 1", alpha=0.8)
    ax.plot(res.energies[:, 0].tolist(), label="simulated annealing")
    ax.axhline(e_min, color="grey", linestyle=":", label="enumerated minimum")
    ax.set_xlabel("sweep")
    ax.set_ylabel("energy E(x)")
    ax.set_title("Energy over time (cf. NNDL Fig. 12.2)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "energy_traces.png", dpi=100)
    plt.close(fig)
    print(f"   wrote {out / 'energy_traces.png'}")


def learning(g: torch.Generator, iterations: int, report_every: int) -> None:
    """Section 5: the learning rule (12.26), clamped and free phases; exact log-likelihood."""
    data = torch.tensor(PATTERNS, dtype=D)
    visible = torch.arange(9) < 6
    sampled = BoltzmannMachine(9, visible, init_std=0.01, generator=g, dtype=D)
    exact = BoltzmannMachine(9, visible, init_std=0.0, dtype=D)
    with torch.no_grad():
        exact.pair_weight.copy_(sampled.pair_weight)
    chains = init_chains(sampled, data, num_chains=200, generator=g)
    best = -math.log(len(PATTERNS))  # minus the entropy of the data distribution
    print(f"5. Learning (12.26): 6 visible + 3 hidden units, {len(PATTERNS)} patterns, "
          f"lr {LR}; exact mean log p(v) (best possible {best:.4f})")
    print(f"   {'iteration':>9} {'sampled phases':>14} {'exact phases':>12}")

    def report(t: int) -> None:
        with torch.no_grad():
            ll_s = sampled.log_marginal_visible(data).mean()
            ll_e = exact.log_marginal_visible(data).mean()
        print(f"   {t:>9d} {float(ll_s):>14.4f} {float(ll_e):>12.4f}")

    report(0)
    for t in range(1, iterations + 1):
        step = boltzmann_learning_step(sampled, data, chains, lr=LR, num_sweeps=2,
                                       generator=g)
        chains = step.chains
        boltzmann_learning_step(exact, data, lr=LR, positive="exact", negative="exact")
        if t % report_every == 0:
            report(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny run for CI (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the PNG plot")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    g = make_generator(args.seed)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
    exact_and_gibbs(g, 100 if args.smoke else 400, 50 if args.smoke else 500)
    annealing(g, 12 if args.smoke else 16, 16 if args.smoke else 64,
              60 if args.smoke else 300, args.out)
    iterations = 50 if args.smoke else 1000
    learning(g, iterations, iterations // 10)


if __name__ == "__main__":
    main()
