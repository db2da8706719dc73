"""The PIRL loss and memory bank against a direct computation of the equations on hand-made vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heads.options import MethodOptions
from heads.methods.pirl import PIRL
from heads.methods.models import JigsawHead, Normalize, TorchVisionSSLPIRL
from heads.methods.pirl import PIRLLoss, sample_negatives

TAU, LAM = 0.07, 0.5


def unit(*v: float) -> np.ndarray:
    a = np.array(v, dtype=np.float64)
    return a / np.linalg.norm(a)


# a bank of 5 entries in 3-d, two anchors (rows 1 and 3) and their image / jigsaw embeddings
BANK = np.stack([unit(1, 0, 0), unit(0.6, 0.8, 0), unit(0, 0, 1), unit(0.2, -0.5, 0.8), unit(-1, 1, 1)])
INDEX = [1, 3]
F_EMB = np.stack([unit(0.5, 0.9, 0.1), unit(0.1, -0.3, 0.9)])
G_EMB = np.stack([unit(0.9, 0.2, -0.3), unit(-0.2, -0.6, 0.7)])


def loss_module(kind: str, negatives: int | None = None, active: list[int] | None = None, seed: int = 0) -> PIRLLoss:
    m = PIRLLoss(len(BANK), 3, kind=kind, negatives=negatives, seed=seed,
                 active_rows=None if active is None else torch.tensor(active))
    m.bank.memory.copy_(torch.tensor(BANK, dtype=torch.float32))
    return m


def t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32)


def direct_infonce(q: np.ndarray, negs: list[list[int]]) -> float:
    """mean_b -log( e^{s(q_b, m_I)/tau} / (e^{s(q_b, m_I)/tau} + sum_{j in negs_b} e^{s(q_b, m_j)/tau}) )."""
    out = []
    for b, i in enumerate(INDEX):
        pos = math.exp(q[b] @ BANK[i] / TAU)
        neg = sum(math.exp(q[b] @ BANK[j] / TAU) for j in negs[b])
        out.append(-math.log(pos / (pos + neg)))
    return float(np.mean(out))


def direct_nce(q: np.ndarray, negs: list[list[int]], z: float, n: int) -> float:
    """mean_b [ -log h(q_b, m_I) - sum_j log(1 - h(q_b, m_j)) ], h = P / (P + K/n), P = e^{s/tau} / Z."""
    out = []
    for b, i in enumerate(INDEX):
        k = len(negs[b])
        h = lambda j: (math.exp(q[b] @ BANK[j] / TAU) / z) / (math.exp(q[b] @ BANK[j] / TAU) / z + k / n)  # noqa: E731
        out.append(-math.log(h(i)) - sum(math.log(1 - h(j)) for j in negs[b]))
    return float(np.mean(out))


def all_but_anchor(rows: list[int]) -> list[list[int]]:
    return [[j for j in rows if j != i] for i in INDEX]


def test_infonce_all_negatives_matches_the_equations():
    got = loss_module("infonce")(t(F_EMB), t(G_EMB), torch.tensor(INDEX))
    negs = all_but_anchor(list(range(len(BANK))))
    want = LAM * direct_infonce(G_EMB, negs) + (1 - LAM) * direct_infonce(F_EMB, negs)
    assert float(got) == pytest.approx(want, rel=1e-5)
    # the anchor is the positive only: counting it again among the negatives gives another value
    with_anchor = [list(range(len(BANK)))] * 2
    wrong = LAM * direct_infonce(G_EMB, with_anchor) + (1 - LAM) * direct_infonce(F_EMB, with_anchor)
    assert abs(float(got) - wrong) > 1e-3


def test_scores_stay_float32_under_bf16_autocast():
    want = float(loss_module("infonce")(t(F_EMB), t(G_EMB), torch.tensor(INDEX)))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_module("infonce")(t(F_EMB), t(G_EMB), torch.tensor(INDEX))
    assert got.dtype == torch.float32 and float(got) == pytest.approx(want, rel=1e-6)


def test_nce_all_negatives_matches_the_equations():
    m = loss_module("nce")
    got = m(t(F_EMB), t(G_EMB), torch.tensor(INDEX))
    negs = all_but_anchor(list(range(len(BANK))))
    n = len(BANK)
    # Z = mean of e^{s/tau} over the first term's positive and negative pairs, times n (set once)
    first = [G_EMB[b] @ BANK[j] / TAU for b, i in enumerate(INDEX) for j in [i] + negs[b]]
    z = float(np.mean(np.exp(first))) * n
    assert math.exp(float(m.log_z)) == pytest.approx(z, rel=1e-5)
    want = LAM * direct_nce(G_EMB, negs, z, n) + (1 - LAM) * direct_nce(F_EMB, negs, z, n)
    assert float(got) == pytest.approx(want, rel=1e-5)


@pytest.mark.parametrize("kind", ["infonce", "nce"])
def test_sampled_negatives_drop_the_anchor(kind):
    k, seed = 3, 5
    m = loss_module(kind, negatives=k, seed=seed)
    got = float(m(t(F_EMB), t(G_EMB), torch.tensor(INDEX)))
    drawn = sample_negatives(torch.arange(len(BANK)), k, torch.Generator().manual_seed(seed)).tolist()
    assert len(set(drawn)) == k
    negs = all_but_anchor(drawn)
    if kind == "infonce":
        want = LAM * direct_infonce(G_EMB, negs) + (1 - LAM) * direct_infonce(F_EMB, negs)
    else:
        first = [G_EMB[b] @ BANK[j] / TAU for b, i in enumerate(INDEX) for j in [i] + negs[b]]
        z = float(np.mean(np.exp(first))) * len(BANK)
        want = LAM * direct_nce(G_EMB, negs, z, len(BANK)) + (1 - LAM) * direct_nce(F_EMB, negs, z, len(BANK))
    assert got == pytest.approx(want, rel=1e-5)


def test_rows_outside_training_are_never_negatives():
    active = [0, 1, 3]  # rows 2 and 4 are validation rows: their bank entries must not matter
    m = loss_module("infonce", active=active)
    got = float(m(t(F_EMB), t(G_EMB), torch.tensor(INDEX)))
    negs = all_but_anchor(active)
    assert got == pytest.approx(LAM * direct_infonce(G_EMB, negs) + (1 - LAM) * direct_infonce(F_EMB, negs), rel=1e-5)
    m.bank.memory[[2, 4]] = F.normalize(torch.randn(2, 3), dim=1)
    assert float(m(t(F_EMB), t(G_EMB), torch.tensor(INDEX))) == pytest.approx(got, rel=1e-6)


def test_bank_update_is_the_normalised_moving_average():
    m = loss_module("infonce")
    m.update(torch.tensor(INDEX), t(F_EMB))
    memory = m.bank.memory.numpy()
    for b, i in enumerate(INDEX):
        want = 0.5 * BANK[i] + 0.5 * F_EMB[b]
        np.testing.assert_allclose(memory[i], want / np.linalg.norm(want), rtol=1e-6)
    for j in set(range(len(BANK))) - set(INDEX):
        np.testing.assert_allclose(memory[j], BANK[j], rtol=1e-6)


def test_method_updates_bank_with_image_embedding_after_step():
    torch.manual_seed(0)
    method = PIRL(num_classes=3, feature_dim=8, num_train=6)
    batch = {"index": torch.tensor([0, 4]), "label": torch.tensor([1, 2]),
             "original": torch.randn(2, 8), "jigsaw": torch.randn(2, 8)}
    before = method.pirl.bank.memory.clone()
    f = method.model.embed(batch["original"]).detach()
    g = method.model.embed_jigsaw(batch["jigsaw"]).detach()
    losses = method.losses(batch)
    assert set(losses) >= {"ce", "pirl"} and method.loss_weights["pirl"] == 1.0
    method.after_step(batch)
    after = method.pirl.bank.memory
    torch.testing.assert_close(after[[0, 4]], F.normalize(0.5 * before[[0, 4]] + 0.5 * f, dim=1))
    assert not torch.allclose(after[[0, 4]], F.normalize(0.5 * before[[0, 4]] + 0.5 * g, dim=1))
    torch.testing.assert_close(after[[1, 2, 3, 5]], before[[1, 2, 3, 5]])


def test_models_have_the_reports_structure():
    model = TorchVisionSSLPIRL(feature_dim=16, num_classes=7)
    text = repr(model)
    for part in ("(head): Sequential", "Linear(in_features=16, out_features=16", "Linear(in_features=16, out_features=128",
                 "Normalize(power=2)", "(head_jig): JigsawHead", "(fc1): Sequential", "out_features=256",
                 "(fc2): Linear(in_features=256, out_features=128", "(classification_head): Linear(in_features=128, out_features=7"):
        assert part in text
    x = torch.randn(4, 16)
    assert model(x).shape == (4, 7)
    torch.testing.assert_close(model.embed(x).norm(dim=1), torch.ones(4))
    torch.testing.assert_close(JigsawHead(16)(x).norm(dim=1), torch.ones(4))
    torch.testing.assert_close(Normalize()(torch.tensor([[3.0, 4.0]])), torch.tensor([[0.6, 0.8]]))


def test_classifier_input_hidden_reads_the_layer_before_the_projection():
    torch.manual_seed(0)
    model = TorchVisionSSLPIRL(feature_dim=16, num_classes=7, classifier_input="hidden")
    assert model.classification_head.in_features == 16
    x = torch.randn(5, 16)
    h, f = model.hidden_and_embedding(x)
    torch.testing.assert_close(model(x), model.classification_head(torch.relu(model.head[0](x))))
    torch.testing.assert_close(f, model.embed(x))  # f (and so the PIRL loss) is unchanged
    assert TorchVisionSSLPIRL(16, 7).classification_head.in_features == 128  # the report's default
    with pytest.raises(ValueError, match="--classifier-input"):
        TorchVisionSSLPIRL(16, 7, classifier_input="logits")


@pytest.mark.parametrize("kind", ["infonce", "nce"])
def test_an_anchor_whose_only_negative_is_itself_is_left_out(kind):
    """--negatives 1 can draw the anchor itself: that row has no negative and must not turn the loss NaN;
    the loss is then the other anchor's alone."""
    seed = next(s for s in range(100)
                if sample_negatives(torch.arange(len(BANK)), 1, torch.Generator().manual_seed(s)).item() == INDEX[0])
    both, alone = loss_module(kind, negatives=1, seed=seed), loss_module(kind, negatives=1, seed=seed)
    for m in (both, alone):
        m.bank.memory[INDEX[0]] = t(unit(0.1, -0.4, 0.85))  # a negative close to the other anchor's queries
        m.log_z.fill_(3.0)  # NCE's Z is estimated on the first batch: fix it so both see the same one
    got = both(t(F_EMB), t(G_EMB), torch.tensor(INDEX))
    want = alone(t(F_EMB[1:]), t(G_EMB[1:]), torch.tensor(INDEX[1:]))  # the same draw: bank row INDEX[0]
    assert torch.isfinite(got) and float(want) > 0.1
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    # a batch whose every anchor lacks a negative contributes 0, not NaN
    none_left = loss_module(kind, negatives=1, seed=seed)
    none_left.log_z.fill_(3.0)
    assert float(none_left(t(F_EMB[:1]), t(G_EMB[:1]), torch.tensor(INDEX[:1]))) == 0.0


@pytest.mark.parametrize("jigsaw_head, matters", [("separate", False), ("shared", True)])
def test_jigsaw_views_reach_the_classifier_only_through_a_shared_layer(jigsaw_head, matters):
    """The report's head_jig shares nothing trainable with f: on frozen features the jigsaw views cannot
    change the classifier. Through f's first layer (--jigsaw-head shared) they do."""
    from heads.training.data import FeatureTable, Scaler
    from heads.training.step import TrainOptions
    from heads.training.train import fit
    from tests.support.synthetic import write_synthetic_cache
    from pipeline.reader import read_cache
    import tempfile
    from pathlib import Path

    states = []
    with tempfile.TemporaryDirectory() as d:
        for view_noise in (0.5, 2.0):  # same originals, different jigsaw views
            path = write_synthetic_cache(Path(d) / f"c{view_noise}.h5", num_classes=3, per_class=12, dim=8,
                                         view_noise=view_noise, kinds=("original", "jigsaw"))
            cache = read_cache(path)
            rows = np.arange(len(cache))
            torch.manual_seed(0)
            method = PIRL(3, 8, len(cache), MethodOptions.of({"train_rows": rows, "jigsaw_head": jigsaw_head}))
            fit(method, FeatureTable.from_cache(cache, {"jigsaw"}, "cpu"), rows, rows[:0], Scaler.identity(8),
                TrainOptions(epochs=2, batch_size=8), progress=False)
            states.append({k: v.clone() for k, v in method.state_dict().items()})
    for key in ("model.head.0.weight", "model.classification_head.weight"):
        assert (not torch.equal(states[0][key], states[1][key])) == matters, key
    assert not torch.equal(states[0]["model.head_jig.fc2.weight"], states[1]["model.head_jig.fc2.weight"])
