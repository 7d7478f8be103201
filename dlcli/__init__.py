"""dlcli: train, compress, export and benchmark PyTorch models from one command line.

Importing this package must stay cheap (no torch): `dlcli --help` depends on it.
"""

__version__ = "0.1.0"
