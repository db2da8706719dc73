"""Helpers shared by the tests (and benchmarks): import them from here, never from conftest."""

IMAGE_SIZE = 64  # plumbing tests: ResNet-50 at 64 px runs ~10x faster than at 224
