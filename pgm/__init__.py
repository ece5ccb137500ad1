"""Probabilistic graphical models: factors, Bayesian networks, Markov networks, HMMs, CRFs.

Layer 3 of probforge: imports ``probforge`` and ``samplers`` only. Submodules: ``pgm.factor``,
``pgm.cpd``, ``pgm.bayesnet``, ``pgm.markov``, ``pgm.graph``, ``pgm.inference``,
``pgm.learning``, ``pgm.io``, ``pgm.naive_bayes``, ``pgm.loglinear``, ``pgm.hmm`` (hidden Markov
models) and ``pgm.crf`` (conditional random fields).
"""

from typing import TYPE_CHECKING

from probforge.lazy import lazy_exports

# Imported on first use (PEP 562): `probforge --help` must not import torch.
if TYPE_CHECKING:
    from pgm.bayesnet import BayesianNetwork
    from pgm.cpd import TabularCPD, sigmoid_cpd
    from pgm.factor import Factor
    from pgm.loglinear import LogLinearFit, LogLinearModel, MaxEntClassifier, fit_loglinear
    from pgm.markov import MarkovNetwork, ising_grid, potts_grid
    from pgm.naive_bayes import CategoricalNaiveBayes, GaussianNaiveBayes

_EXPORTS = {
    "BayesianNetwork": "pgm.bayesnet",
    "CategoricalNaiveBayes": "pgm.naive_bayes",
    "Factor": "pgm.factor",
    "GaussianNaiveBayes": "pgm.naive_bayes",
    "LogLinearFit": "pgm.loglinear",
    "LogLinearModel": "pgm.loglinear",
    "MarkovNetwork": "pgm.markov",
    "MaxEntClassifier": "pgm.loglinear",
    "TabularCPD": "pgm.cpd",
    "fit_loglinear": "pgm.loglinear",
    "ising_grid": "pgm.markov",
    "potts_grid": "pgm.markov",
    "sigmoid_cpd": "pgm.cpd",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "BayesianNetwork",
    "CategoricalNaiveBayes",
    "Factor",
    "GaussianNaiveBayes",
    "LogLinearFit",
    "LogLinearModel",
    "MarkovNetwork",
    "MaxEntClassifier",
    "TabularCPD",
    "fit_loglinear",
    "ising_grid",
    "potts_grid",
    "sigmoid_cpd",
]
