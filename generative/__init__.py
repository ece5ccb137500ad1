"""Deep generative models: Boltzmann machines, RBMs, DBNs, VAEs, GANs, diffusion, flow matching.

Layer 4 of probforge: may import ``probforge``, ``samplers`` and ``pgm``.
"""
