"""Energy-based models: Hopfield networks, Boltzmann machines, RBMs, DBNs, and their partition
functions (NNDL 8.6.1 and chapter 12, DL7 7.2).

Import the modules directly (``from generative.energy.rbm import BernoulliRBM``).
"""
