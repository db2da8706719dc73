"""Backbone names, importable without TensorFlow (for --help and stage 2)."""

DEFAULT_HANDLE = "https://tfhub.dev/google/imagenet/resnet_v2_50/feature_vector/5"
RANDOM_RESNET = "random-resnet50v2"
UNTRAINED = "random (untrained)"
