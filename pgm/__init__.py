"""Probabilistic graphical models: factors, Bayesian networks, Markov networks, HMMs, CRFs.

Layer 3 of probforge: imports ``probforge`` and ``samplers`` only.
"""
