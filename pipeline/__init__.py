"""The contract shared by both stages: the dataset readers (CUB-200-2011 and the other fine-grained sets), the views,
the feature-cache format.

Imports neither TensorFlow nor PyTorch.
"""

__version__ = "0.1.0"
PACKAGE = "cub-ssl-cache"
CREATED_BY = f"{PACKAGE} {__version__}"
