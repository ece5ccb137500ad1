"""Probabilistic graphical models: factors, Bayesian networks, Markov networks, HMMs, CRFs.

Layer 3 of probforge: imports ``probforge`` and ``samplers`` only. Submodules: ``pgm.factor``,
``pgm.cpd``, ``pgm.bayesnet``, ``pgm.markov``, ``pgm.graph``, ``pgm.inference``,
``pgm.learning``, ``pgm.io``, ``pgm.naive_bayes``, ``pgm.loglinear``, ``pgm.hmm`` (hidden Markov
models) and ``pgm.crf`` (conditional random fields).
"""

from pgm.bayesnet import BayesianNetwork
from pgm.cpd import TabularCPD, sigmoid_cpd
from pgm.factor import Factor
from pgm.loglinear import LogLinearFit, LogLinearModel, MaxEntClassifier, fit_loglinear
from pgm.markov import MarkovNetwork, ising_grid, potts_grid
from pgm.naive_bayes import CategoricalNaiveBayes, GaussianNaiveBayes

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
