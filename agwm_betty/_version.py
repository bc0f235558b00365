"""The package version, in a module of its own so that both the package and its run records can read it."""
__version__ = "0.3.0"
