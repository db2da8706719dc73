"""Backbone outputs: hub-style endpoint dicts, pooled-only models, and --spatial refusal."""

from __future__ import annotations

import pytest
import tensorflow as tf

from extract.backbone import load_backbone
from pipeline.errors import PipelineError

pytestmark = pytest.mark.tf  # needs TensorFlow (stage 1)


class Endpoints(tf.Module):
    """Like a TF-Hub slim ResNet called with return_endpoints=True: a dict of named outputs."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[1, 2]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        block4 = tf.nn.relu(tf.einsum("bhwc,cd->bhwd", tf.nn.avg_pool2d(images, 8, 8, "VALID"), self.w))
        return {"default": tf.reduce_mean(block4, [1, 2]) + 1.0, "resnet_v2_50/block4": block4,
                "resnet_v2_50/block3": block4[..., :4]}


class PostNorm(tf.Module):
    """A v2-style model that also exports its post-norm map (and a kept-dims global pool, as slim does)."""

    def __init__(self):
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([3, 8], seed=[3, 4]))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        block4 = tf.einsum("bhwc,cd->bhwd", tf.nn.avg_pool2d(images, 8, 8, "VALID"), self.w)
        postnorm = tf.nn.relu(2.0 * block4 - 0.1)  # stands in for batch norm + ReLU
        pool = tf.reduce_mean(postnorm, [1, 2], keepdims=True)
        return {"default": pool[:, 0, 0], "resnet_v2_50/block4": block4, "resnet_v2_50/postnorm": postnorm,
                "resnet_v2_50/global_pool": pool}


class Pooled(tf.Module):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def __call__(self, images):
        return tf.reduce_mean(images, [1, 2])


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    tf.saved_model.save(Endpoints(), str(root / "endpoints"))
    tf.saved_model.save(Pooled(), str(root / "pooled"))
    tf.saved_model.save(PostNorm(), str(root / "postnorm"))
    return root


def test_endpoint_dict_uses_default_and_block4(saved):
    net = load_backbone(str(saved / "endpoints"), 32, spatial=True)
    x = tf.random.stateless_uniform([2, 32, 32, 3], seed=[0, 1])
    pooled, maps = net.run(x)
    assert net.feature_dim == 8 and net.spatial_shape == (4, 4) and net.endpoint == "resnet_v2_50/block4"
    # the pooled vector is the 'default' endpoint, not a mean of the map
    assert float(tf.reduce_max(tf.abs(pooled - (tf.reduce_mean(maps, [1, 2]) + 1.0)))) < 1e-5
    assert not net.untrained and net.weights == "pretrained"
    # recorded: these maps are not what the pooled vector averages (as for TF-Hub's slim v2 block4)
    assert net.spatial_activation.startswith("resnet_v2_50/block4: the last block's output; for ResNet v2 this is "
                                             "before the final batch norm + ReLU")
    assert "features/original is NOT its mean over h, w" in net.spatial_activation


def test_post_norm_endpoint_is_preferred_by_name(saved):
    net = load_backbone(str(saved / "postnorm"), 32, spatial=True)
    assert net.endpoint == "resnet_v2_50/postnorm" and net.spatial_shape == (4, 4)  # not block4, not global_pool
    assert net.spatial_activation == ("resnet_v2_50/postnorm: after the network's final batch norm + ReLU "
                                      "(post-norm); features/original is its mean over h, w")
    pooled, maps = net.run(tf.random.stateless_uniform([2, 32, 32, 3], seed=[5, 6]))
    assert float(tf.reduce_max(tf.abs(pooled - tf.reduce_mean(maps, [1, 2])))) < 1e-5
    assert load_backbone(str(saved / "postnorm"), 32).spatial_activation is None  # no maps, nothing to record


def test_pooled_only_model(saved):
    net = load_backbone(str(saved / "pooled"), 32)
    assert net.feature_dim == 3 and net.spatial_shape is None
    with pytest.raises(PipelineError, match="--spatial needs"):
        load_backbone(str(saved / "pooled"), 32, spatial=True)
