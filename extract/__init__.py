"""Stage 1: the only package that imports TensorFlow.

tensorflow-hub subclasses Keras 2 (tf_keras): select it before TensorFlow is first imported.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")  # None unless the user chose one
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings

# tensorflow-hub 0.16 imports pkg_resources (hence setuptools<81); its deprecation warning is noise here
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
