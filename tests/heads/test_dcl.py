"""DCL heads: alignment targets from permutations, learning the alignment / discriminator, swap mode, test logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heads.methods.dcl import DCL, alignment_targets, identity_permutation
from heads.options import MethodOptions
from pipeline.views import apply_permutation, make_permutations, original_positions

R = 7


def build_dcl(num_classes: int, feature_dim: int, *, spatial: bool, grid: int, **options) -> DCL:
    """DCL heads with dcl_* options given without their prefix (adv=, hidden=, test_logits=, ...); network "maps"
    unless given (every branch on the maps: the tests here pin it; tests/heads/test_dcl_network.py the default)."""
    options = {"network": "maps", **options}
    return DCL(num_classes, feature_dim, MethodOptions.of({f"dcl_{k}": v for k, v in options.items()}),
               spatial=spatial, grid=grid)


# --- alignment targets --------------------------------------------------------------------------
def test_targets_grid2_hand_made():
    # position p holds original tile perm[p]: [3, 2, 1, 0] is the 180-degree rotation of a 2x2 grid.
    t = alignment_targets(torch.tensor([[3, 2, 1, 0], [1, 0, 2, 3]]), 2)
    assert t.shape == (2, 2, 2, 2)
    rot = torch.tensor([[[1, 1], [1, 0]], [[0, 1], [0, 0]]]) / 2
    row_swap = torch.tensor([[[0, 1], [0, 0]], [[1, 0], [1, 1]]]) / 2
    assert torch.equal(t[0], rot)
    assert torch.equal(t[1], row_swap)


def test_targets_grid3_hand_made():
    # swap the two corner tiles 0 <-> 8 and move tile 5 to position 3 (and 3 to 5).
    t = alignment_targets(torch.tensor([[8, 1, 2, 5, 4, 3, 6, 7, 0]]), 3)[0] * 3
    assert t[0, 0].tolist() == [2, 2]  # position (0, 0) holds the bottom-right tile
    assert t[2, 2].tolist() == [0, 0]
    assert t[1, 0].tolist() == [1, 2]  # position (1, 0) holds tile 5, from (1, 2)
    assert t[1, 2].tolist() == [1, 0]
    for i, j in [(0, 1), (0, 2), (1, 1), (2, 0), (2, 1)]:
        assert t[i, j].tolist() == [i, j]


def test_identity_targets_are_the_grid():
    t = alignment_targets(identity_permutation(3, R), R)
    rows, cols = torch.meshgrid(torch.arange(R), torch.arange(R), indexing="ij")
    expected = torch.stack([rows, cols], -1).float() / R
    assert t.shape == (3, R, R, 2)
    assert torch.equal(t, expected.expand(3, -1, -1, -1))
    assert t.min() == 0 and t.max() < 1


def test_targets_match_the_shuffled_image():
    """Shuffle an image whose tile t is filled with t: the targets name the tile seen at each position."""
    perms = make_permutations("rcm", 0, np.arange(1, 6), 1, R)[:, 0]
    tile_ids = np.repeat(np.repeat(np.arange(R * R).reshape(R, R), 4, 0), 4, 1)  # 28x28, 4 px tiles
    targets = alignment_targets(torch.from_numpy(perms), R) * R
    for perm, target in zip(perms, targets):
        seen = apply_permutation(tile_ids, perm, R)[::4, ::4]  # the tile id at each position
        assert np.array_equal(target.numpy(), np.stack(np.divmod(seen, R), -1))
        assert np.array_equal(target.numpy().reshape(-1, 2), original_positions(perm, R))


def test_targets_reject_wrong_grid():
    with pytest.raises(ValueError, match="3x3"):
        alignment_targets(torch.arange(4)[None], 3)


# --- synthetic data -----------------------------------------------------------------------------
def _spatial_batch(n: int, dim: int, seed: int, codes: tuple[torch.Tensor, torch.Tensor], num_classes: int = 4):
    """Each region's feature = code(origin row) + code(origin col) + noise: it encodes where it came from."""
    row_code, col_code = codes
    perm = torch.from_numpy(make_permutations("rcm", seed, np.arange(n), 1, R)[:, 0]).long()
    gen = torch.Generator().manual_seed(seed)

    def region_features(p: torch.Tensor) -> torch.Tensor:
        feats = row_code[p // R] + col_code[p % R]  # (n, R*R, dim)
        return (feats + 0.1 * torch.randn(feats.shape, generator=gen)).view(n, R, R, dim)

    return {"index": torch.arange(n), "label": torch.randint(num_classes, (n,), generator=gen),
            "original": torch.zeros(n, dim), "rcm": torch.zeros(n, dim), "rcm_perm": perm,
            "spatial_original": region_features(identity_permutation(n, R)), "spatial_rcm": region_features(perm)}


def _train(model: DCL, batch: dict, steps: int, lr: float = 1e-2) -> list[dict[str, float]]:
    """The training loop's contract: minimise sum(weight * loss), then after_step."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        losses = model.losses(batch)
        loss = sum(model.loss_weights[k] * v for k, v in losses.items())
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.after_step(batch)
        history.append({k: v.item() for k, v in losses.items()})
    return history


def test_alignment_learns_positions():
    torch.manual_seed(0)
    dim = 32
    codes = (torch.randn(R, dim), torch.randn(R, dim))
    train, held_out = _spatial_batch(64, dim, 1, codes), _spatial_batch(64, dim, 2, codes)
    model = build_dcl(4, dim, spatial=True, grid=R, hidden=32, adv_weight=0.0)
    history = _train(model, train, 150, lr=2e-2)
    assert history[-1]["align"] < history[0]["align"] / 10
    with torch.no_grad():
        _, hmap = model.embed(held_out["spatial_rcm"])
        pred = model.alignment_map(hmap)
    truth = alignment_targets(held_out["rcm_perm"], R)
    assert (pred - truth).abs().mean() < 0.03  # regions are 1/7 = 0.14 apart
    assert ((pred * R).round() == truth * R).all(-1).float().mean() > 0.95  # region recovered exactly


def test_alignment_pools_small_maps_to_the_grid():
    """h != R (a 2x2 map at 64 px input): the map is pooled to R x R and every loss is finite."""
    torch.manual_seed(0)
    model = build_dcl(3, 8, spatial=True, grid=R, hidden=16)
    batch = {"label": torch.tensor([0, 2]), "rcm_perm": torch.randperm(R * R).expand(2, -1),
             "spatial_original": torch.randn(2, 2, 2, 8), "spatial_rcm": torch.randn(2, 2, 2, 8)}
    _, hmap = model.embed(batch["spatial_rcm"])
    assert model.alignment_map(hmap).shape == (2, R, R, 2)
    losses = model.losses(batch)
    assert set(losses) == {"ce", "adv", "align"} and all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("spatial", [False, True])
def test_discriminator_separates_visible_destruction(spatial):
    torch.manual_seed(0)
    dim, classes = 16, 5
    shift = 4 * F.normalize(torch.randn(dim), dim=0)  # 4 noise sd: destruction leaves a visible trace

    def batch(n: int) -> dict:
        label = torch.randint(classes, (n,))
        shape = (n, 2, 2, dim) if spatial else (n, dim)
        original = torch.randn(shape)
        rcm = torch.randn(shape) + shift
        key = "spatial_" if spatial else ""
        return {"label": label, "rcm_perm": identity_permutation(n, R), key + "original": original, key + "rcm": rcm}

    model = build_dcl(classes, dim, spatial=spatial, grid=R, hidden=32, adv="binary")
    _train(model, batch(256), 150)
    test = batch(256)
    with torch.no_grad():
        z, _ = model.embed(torch.cat([model._input(test, "original"), model._input(test, "rcm")]))
        pred = model.adversary(z).argmax(1)
    truth = torch.cat([torch.zeros(256), torch.ones(256)]).long()
    assert (pred == truth).float().mean() > 0.9


# --- loss definitions and options ---------------------------------------------------------------
def _pooled_batch(n: int = 6, dim: int = 10, classes: int = 3) -> dict:
    return {"index": torch.arange(n), "label": torch.arange(n) % classes, "original": torch.randn(n, dim),
            "rcm": torch.randn(n, dim), "rcm_perm": identity_permutation(n, R)}


@pytest.mark.parametrize("adv", ["binary", "swap"])
def test_loss_definitions(adv):
    torch.manual_seed(0)
    model = build_dcl(3, 10, spatial=False, grid=R, hidden=8, adv=adv)
    batch = _pooled_batch()
    losses = model.losses(batch)
    assert set(losses) == {"ce", "adv"} and model.needs == {"rcm"}
    y = batch["label"]
    z_o, _ = model.embed(batch["original"])
    z_d, _ = model.embed(batch["rcm"])
    ce = (F.cross_entropy(model.classifier(z_o), y) + F.cross_entropy(model.classifier(z_d), y)) / 2
    assert torch.allclose(losses["ce"], ce)
    a_o, a_d = model.adversary(z_o), model.adversary(z_d)
    if adv == "binary":
        assert a_o.shape == (6, 2)
        t_o, t_d = torch.zeros_like(y), torch.ones_like(y)
    else:
        assert a_o.shape == (6, 6)  # 2C-way
        t_o, t_d = y, y + 3  # destructed -> y + C
    assert torch.allclose(losses["adv"], (F.cross_entropy(a_o, t_o) + F.cross_entropy(a_d, t_d)) / 2)


def test_swap_head_learns_destructed_as_y_plus_c():
    torch.manual_seed(0)
    dim, classes = 16, 4
    means, shift = 3 * torch.randn(classes, dim), 3 * torch.randn(dim)
    y = torch.randint(classes, (128,))
    batch = {"label": y, "rcm_perm": identity_permutation(128, R),
             "original": means[y] + torch.randn(128, dim), "rcm": means[y] + shift + torch.randn(128, dim)}
    model = build_dcl(classes, dim, spatial=False, grid=R, hidden=32, adv="swap")
    _train(model, batch, 100)
    with torch.no_grad():
        pred = model.adversary(model.embed(batch["rcm"])[0]).argmax(1)
    assert (pred == y + classes).float().mean() > 0.9


def test_sum_logits_add_both_swap_halves():
    torch.manual_seed(0)
    model = build_dcl(3, 10, spatial=False, grid=R, hidden=8, adv="swap", test_logits="sum")
    batch = _pooled_batch()
    logits = model(batch)
    z, _ = model.embed(batch["original"])
    swap = model.adversary(z)
    assert logits.shape == (6, 3)
    assert torch.allclose(logits, model.classifier(z) + swap[:, :3] + swap[:, 3:])


def test_original_logits_and_spatial_forward():
    torch.manual_seed(0)
    model = build_dcl(3, 10, spatial=True, grid=R, hidden=8, adv="swap", adv_weight=0.5, align_weight=0.1)
    assert model.needs == {"rcm", "spatial"}
    assert model.loss_weights == {"ce": 1.0, "adv": 0.5, "align": 0.1}
    x = torch.randn(4, R, R, 10).half()  # the cache stores float16
    logits = model({"spatial_original": x})
    assert logits.shape == (4, 3) and logits.dtype == torch.float32
    assert torch.allclose(logits, model.classifier(model.adapter(model.fixed(x.float())).mean((1, 2))))
    with pytest.raises(KeyError, match="spatial_original"):
        model({"original": torch.randn(4, 10)})


def test_invalid_options():
    # messages name the command-line options, not internal parameter names
    with pytest.raises(ValueError, match="needs --dcl-adv swap"):
        build_dcl(3, 10, spatial=False, grid=R, adv="binary", test_logits="sum")
    with pytest.raises(ValueError, match="--dcl-adv: expected one of"):
        build_dcl(3, 10, spatial=False, grid=R, adv="gradient-reversal")
    with pytest.raises(ValueError, match="--dcl-test-logits: expected one of"):
        build_dcl(3, 10, spatial=False, grid=R, test_logits="max")
