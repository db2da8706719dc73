"""The contract shared by both stages: CUB-200-2011 reader, views, feature-cache format.

Imports neither TensorFlow nor PyTorch.
"""

__version__ = "0.1.0"
PACKAGE = "cub-ssl-cache"
CREATED_BY = f"{PACKAGE} {__version__}"
