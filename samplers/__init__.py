"""Generic samplers over batched log-densities and discrete models (issue: samplers).

Layer 2 of probforge: imports ``probforge`` only.
"""
