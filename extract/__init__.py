"""Stage 1: the only package that imports TensorFlow.

tensorflow-hub subclasses Keras 2 (tf_keras): select it before TensorFlow is first imported.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")  # None unless the user chose one
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings
from importlib.util import find_spec

# torch's CUDA builds (the torch 2.14.1 constraints.txt pins) bring triton, and importing triton in a process where
# TensorFlow is already loaded segfaults (triton 3.8, TensorFlow 2.21); torch imports it on the first use of
# torch._dynamo, e.g. by an optimizer of the heads. Loaded before TensorFlow, both work: import it here, first
# (0.2 s, and only where triton is installed).
if find_spec("triton") is not None:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001  (a triton that does not import is torch's business, not stage 1's)
        pass

# tensorflow-hub 0.16 imports pkg_resources (hence setuptools<81); its deprecation warning is noise here
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
