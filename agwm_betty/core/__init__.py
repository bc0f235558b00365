"""The method: the mixup surgery and its kernels, the hypergradients, the two Betty problems, the two
phases of Algorithm 1 and the training loop every method shares, saved searches, diagnostics.

The modules that import Betty check first that it is the 0.2.1 this code is written for
(`betty_compat`); `registry` imports neither torch nor Betty.
"""
