"""DCL heads on cached features (Chen et al., "Destruction and Construction Learning", CVPR 2019).

One trainable adapter, Linear D -> d + ReLU (the trunk's trainable stand-in), is shared by every branch. Its
inputs:
  * the pooled feature (B, D) of a view, standardised as every method's (heads.training.data.Scaler, training rows);
  * spatial maps (B, h, w, D), channels-last as stored in the cache, first through a FIXED input transform
    (`fixed`, buffers only, fitted once in `prepare_inputs` on a seeded sample of positions of training rows'
    original maps, never trained, stated in config.json): LayerNorm over D at each position, a per-channel
    standardisation (x - mean) / std (each channel then has the standardised pooled input's zero mean and unit
    scale), and optionally a fixed PCA D -> N (`--dcl-pca N`, fitted on the standardised positions; the pooled
    input is then projected on the same axes). The adapter applied at each position is exactly a 1x1 conv.

`--dcl-network` says which input each branch reads (both networks are the same modules, the same losses):
  * "pooled" (default): the classifier and the adversarial head read adapter(pooled feature), as `none`'s
    first layer reads it, and the classifier is `none`'s layers after its first (`classifier_head`); region
    alignment reads the adapter applied at each position of the maps. dcl-none then reads no map at all: it is
    `none`'s network at width d on the standardised pooled feature.
  * "maps" (runs saved before the option existed): with spatial maps every branch reads the adapter at each
    position; its global average pool feeds the classifier Linear(d, C) and the adversarial head (the paper's
    order: trunk map, then pooling). On real-shaped (post-ReLU) features its dcl-none fell up to 46 points below
    `none` (benchmarks/RESULTS.md, "DCL's same-network baseline").
Without spatial maps both networks read the pooled feature (each with its own classifier), with no region alignment.

Why the per-channel standardisation: a post-ReLU backbone's maps share a large channel-mean vector. After
the LayerNorm alone, 78.5% of each position's energy was that one vector on the demo's random ResNet-50
maps, every gradient on the 1x1 conv pointed the same way and 96% of its ReLU units died by step 36: DCL
and dcl-none stayed at chance. Standardised channels give the conv zero-mean, unit-scale inputs.

Branches (losses are returned unweighted; the training loop multiplies by `loss_weights`):
  * "ce":    classification of the original AND the destructed (RCM) image, both with the image's
             label; the MEAN of the two cross-entropies (see `DCL.classification_loss`).
  * "adv":   adv="binary": 2-way discriminator, original -> 0, destructed -> 1 (report eq. 5-6);
             adv="swap": the official code's 2C-way classifier, original -> y, destructed -> y + C.
             Both are trained jointly with the adapter by plain minimisation (no gradient reversal),
             as in the paper and the official code.
  * "align": spatial maps only: on the adapter's map (B, h, w, d), 1x1 conv d -> 2, ReLU, adaptive average
             pooling to R x R, L1 to each region's original (row, col) / R, for the destructed and the original
             image (report eq. 8).

`--aux dcl-none` (`DCLBaseline`) is DCL's same-network baseline: the same adapter and classifier (same
--dcl-network), trained with cross-entropy on the original image only (no destructed image, no adversarial or
alignment loss).

Test-time logits (`forward`) come from the original image: test_logits="original" gives the classifier
alone; test_logits="sum" (adv="swap" only) gives classifier + swap[:, :C] + swap[:, C:], exactly the
official code's `outputs[0] + outputs[1][:, 0:numcls] + outputs[1][:, numcls:2*numcls]`
(JDAI-CV/DCL test.py and utils/eval_model.py).

Permutation convention (pipeline/views.py): perm[p] is the row-major index of the ORIGINAL region that
sits at position p of the shuffled image.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heads.scaling import floored_std
from heads.methods.declaration import Declaration, OptionsLike
from heads.methods.method import Batch, Method, masks
from heads.methods.models import EMBED_DIM, Normalize
from heads.option_table import MethodOptions

ADV_MODES = ("binary", "swap")
NETWORKS = ("pooled", "maps")
TEST_LOGITS = ("original", "sum")
PCA_ROWS, PCA_POSITIONS = 1024, 8  # the fixed transform is fitted on up to 1,024 training rows x 8 positions each


class ChannelStandardize(nn.Module):
    """x -> (x - mean) / std over the last (channel) axis: statistics fitted once (`fit`), never trained."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    @torch.no_grad()
    def fit(self, x: Tensor) -> dict[str, float]:
        """Mean and (floored, heads.scaling.floored_std) std of the rows of x (P, D); a summary for config.json."""
        x64 = x.double()
        mean, std = x64.mean(0), x64.std(0, unbiased=False)
        floored = torch.from_numpy(floored_std(std.numpy()))
        self.mean.copy_(mean.float())
        self.std.copy_(floored.float())
        return {"shared_mean_energy": round(float((mean ** 2).sum() / (x64 ** 2).sum(1).mean()), 6),
                "channels_floored": int((std < floored).sum())}

    def extra_repr(self) -> str:
        return f"{self.mean.shape[0]} channels (fixed)"


class FixedPCA(nn.Module):
    """x -> (x - mean) @ components: a projection D -> N fitted once (`fit`), never trained (buffers only)."""

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        if not 1 <= channels < dim:
            raise ValueError(f"--dcl-pca: expected 1 <= N < {dim} (the maps' channels), found {channels}")
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("components", torch.eye(dim)[:, :channels].contiguous())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x.dtype)) @ self.components.to(x.dtype)

    @torch.no_grad()
    def fit(self, x: Tensor) -> float:
        """Principal axes of the rows of x (P, D); returns the share of variance the N kept axes explain."""
        x = x.float()
        mean = x.double().mean(0)
        centred = x - mean.float()
        cov = centred.T @ centred / max(len(x) - 1, 1)
        values, vectors = torch.linalg.eigh(cov)  # ascending; float32 (float64 takes 3x longer at D = 2048)
        values = values.double()
        n = self.components.shape[1]
        self.mean.copy_(mean.float())
        self.components.copy_(vectors[:, -n:].flip(1).float())
        return float(values[-n:].sum() / values.clamp(min=0).sum())

    def extra_repr(self) -> str:
        return f"{self.mean.shape[0]} -> {self.components.shape[1]} (fixed)"


def classifier_head(network: str, hidden: int, num_classes: int) -> nn.Module:
    """The classifier on the adapter's d-vector. Network "maps": Linear(d, C), the paper's FC. Network "pooled":
    `none`'s layers after its first, Linear(d, 128), L2 normalisation, Linear(128, C), so that dcl-none is
    `none`'s network at width d (with Linear(d, C) alone it fell 10-23 points below none on the sample pictures:
    its training loss fell below 0.01 by epoch 8, while the unit-norm embedding bounds the logits)."""
    if network == "maps":
        return nn.Linear(hidden, num_classes)
    return nn.Sequential(nn.Linear(hidden, EMBED_DIM), Normalize(2), nn.Linear(EMBED_DIM, num_classes))


def alignment_targets(perm: Tensor, grid: int) -> Tensor:
    """(B, R, R, 2) float targets, channels-last: [b, i, j] = (row, col) / R of tile perm[b, i*R + j].

    The original image's targets are `alignment_targets(identity, grid)`, i.e. (i / R, j / R).
    Same decoding as `pipeline.views.original_positions` (divmod(perm, grid)), values in [0, 1).
    """
    if perm.dim() != 2 or perm.shape[1] != grid * grid:
        raise ValueError(f"perm: expected (B, {grid * grid}) for a {grid}x{grid} grid, found {tuple(perm.shape)}")
    perm = perm.long()
    rows, cols = torch.div(perm, grid, rounding_mode="floor"), perm % grid
    return torch.stack([rows, cols], dim=-1).float().view(-1, grid, grid, 2) / grid


def identity_permutation(batch_size: int, grid: int, device: torch.device | str | None = None) -> Tensor:
    """(B, R*R) identity permutations: every region of the original image is where it came from."""
    return torch.arange(grid * grid, device=device).expand(batch_size, -1)


def network_reads(spatial: bool, network: str, pca: int, destructs: bool) -> frozenset[str]:
    """The cached arrays DCL's network reads besides the pooled original: the RCM view when it destructs (dcl, not
    dcl-none), and the spatial maps when the cache holds them (`spatial`) and something reads them: the classifier
    (--dcl-network maps), region alignment (dcl) or the fixed PCA fitted on them (--dcl-pca)."""
    maps = spatial and (network == "maps" or destructs or bool(pca))
    return frozenset({"rcm"} if destructs else ()) | frozenset({"spatial"} if maps else ())


class DCLBaseline(Method):
    """`--aux dcl-none`, DCL's same-network baseline: the shared adapter and the classifier (the same
    --dcl-network as dcl), cross-entropy on the original image only (no auxiliary branch)."""

    aligns = False  # DCL adds region alignment on the maps; the baseline reads them only with network="maps"

    def __init__(self, num_classes: int, feature_dim: int, options: MethodOptions | None = None, *,
                 spatial: bool) -> None:
        super().__init__()
        o = options or MethodOptions.of({})
        hidden, pca, network = o.dcl_hidden, int(getattr(o, "dcl_pca", 0) or 0), o.dcl_network
        if network not in NETWORKS:
            raise ValueError(f"--dcl-network: expected one of {NETWORKS}, found {network!r}")
        self.num_classes, self.network = num_classes, network
        # spatial: the classifier reads the pooled adapter map (network "maps"); maps: the maps are read at all
        self.spatial = spatial and network == "maps"
        # --dcl-pca is fitted on the maps, so it needs them even where nothing else reads them (dcl-none, pooled)
        self.needs = set(network_reads(spatial, network, pca, destructs=self.aligns))
        self.maps = "spatial" in self.needs
        if pca and not spatial:
            raise ValueError("--dcl-pca reduces the channels of spatial maps; this training cache holds none "
                             "(extract with --spatial, or drop --dcl-pca)")
        # Maps first pass a fixed transform (buffers only, fitted in prepare_inputs on training rows): a
        # parameter-free LayerNorm at each position (raw maps' per-position scale varies far more than pooled
        # features'), a per-channel standardisation (the shared channel mean of post-ReLU maps otherwise
        # kills the adapter's ReLUs; module docstring) and the optional --dcl-pca. Parameter-free, so it
        # needs no gradient: that saves a third of the adapter's backward pass on (B, 7, 7, 2048) maps.
        # Each channel then has zero mean and unit variance over positions: the scale of the standardised
        # pooled input that the same first layer reads with network "pooled".
        self.pca = FixedPCA(feature_dim, pca) if pca else None
        self.fixed: nn.Sequential | None = None
        if self.maps:
            fixed: list[nn.Module] = [nn.LayerNorm(feature_dim, elementwise_affine=False), ChannelStandardize(feature_dim)]
            self.fixed = nn.Sequential(*fixed, *([self.pca] if self.pca is not None else []))
        self.inputs_info: dict[str, Any] | None = None  # what prepare_inputs fitted
        self.adapter = nn.Sequential(nn.Linear(pca or feature_dim, hidden), nn.ReLU(inplace=True))
        self.classifier = classifier_head(network, hidden, num_classes)
        self.loss_weights: dict[str, float] = {"ce": 1.0}

    def prepare_inputs(self, table: Any, train_rows: np.ndarray, seed: int) -> dict[str, Any] | None:
        """Spatial input: fit the fixed transform (channel statistics after the LayerNorm, then --dcl-pca on the
        standardised positions) on a seeded sample of positions of TRAINING rows' original maps (never
        validation or test rows); what was fitted, for config.json. None on pooled input."""
        if self.fixed is None:
            return None
        key = (int(seed), hash(np.asarray(train_rows, dtype=np.int64).tobytes()))
        if self.inputs_info is not None and self._inputs_key == key:
            return self.inputs_info  # fitted already (for config.json, before the loop asks again)
        self._inputs_key = key
        rng = np.random.default_rng([int(seed), 23])
        rows = np.sort(rng.choice(np.asarray(train_rows), min(PCA_ROWS, len(train_rows)), replace=False))
        maps = table.spatial_maps("original", torch.from_numpy(rows).to(table.original.device), None)
        maps = maps.reshape(len(rows), -1, maps.shape[-1]).cpu()  # (n, h*w, D)
        take = min(PCA_POSITIONS, maps.shape[1])
        pos = torch.from_numpy(np.stack([rng.choice(maps.shape[1], take, replace=False) for _ in rows]))
        sample = torch.gather(maps, 1, pos[:, :, None].expand(-1, -1, maps.shape[-1])).reshape(-1, maps.shape[-1])
        sample = F.layer_norm(sample, sample.shape[-1:])  # the transform's first step
        standardise = self.fixed[1]
        info: dict[str, Any] = {
            "fitted_on": "original spatial maps of training rows only (no validation or test row)",
            "rows": int(len(rows)), "positions": int(sample.shape[0]), "positions_per_row": int(take),
            "seed": int(seed), "feature_dim": int(maps.shape[-1]),
            "steps": ["layer_norm", "channel_standardisation"] + (["pca"] if self.pca is not None else []),
            "channel_standardisation": standardise.fit(sample)}
        if self.pca is not None:
            explained = self.pca.fit(standardise(sample))
            info.update({"dcl_pca": self.pca.components.shape[1], "explained_variance": round(explained, 6)})
        self.inputs_info = info
        return info

    def reduced_table(self, table: Any) -> Any:
        """With --dcl-pca (fitted): `table` with its maps projected once by the fixed transform (float16), so an
        epoch runs only the trainable adapter; otherwise `table` itself (the transform runs per batch)."""
        if self.pca is None or self.inputs_info is None:
            return table
        fixed = self.fixed
        return table.with_maps(lambda x: fixed(x.float()), self.pca.components.shape[1], ("dcl_pca", self._inputs_key,
                               self.pca.components.shape[1]))

    # --- features -------------------------------------------------------------------------------
    def _input(self, batch: Batch, view: str, spatial: bool | None = None) -> Tensor:
        """The cached input for view "original" or "rcm": what the classifier reads (the map with network "maps"
        and spatial maps, else the pooled feature), or with spatial=True the map itself."""
        spatial = self.spatial if spatial is None else spatial
        key = f"spatial_{view}" if spatial else view
        if key not in batch:
            raise KeyError(f"DCL heads built with spatial maps={self.maps}, network={self.network!r} need "
                           f"batch[{key!r}]")
        x = batch[key].float()
        if x.dim() != (4 if spatial else 2):
            raise ValueError(f"batch[{key!r}]: expected {'(B, h, w, D)' if spatial else '(B, D)'}, "
                             f"found {tuple(x.shape)}")
        return x

    def position_map(self, x: Tensor) -> Tensor:
        """(B, h, w, d): the adapter at each position of a map (B, h, w, D) after the fixed transform; with
        --dcl-pca, maps of N channels were projected by it already (`reduced_table`)."""
        if self.fixed is not None and not (self.pca is not None and x.shape[-1] == self.pca.components.shape[1]):
            x = self.fixed(x)
        return self.adapter(x)

    def embed(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(the classifier's input (B, d), the adapted map (B, h, w, d) or None). A map (B, h, w, D): the adapter
        at each position (`position_map`), then global average pooling; a pooled feature (B, D): the adapter."""
        if x.dim() == 4:
            h = self.position_map(x)
            return h.mean(dim=(1, 2)), h
        if self.pca is not None:  # the first layer reads N channels: the pooled feature on the same fixed axes
            x = self.pca(x)
        return self.adapter(x), None

    def forward(self, batch: Batch) -> Tensor:
        """Test-time class logits (B, C) of the original image."""
        z, _ = self.embed(self._input(batch, "original"))
        return self.classifier(z)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """`--aux dcl-none`: cross-entropy of the classifier on the original image only (labelled rows)."""
        labelled, _ = masks(batch)
        logits = self(batch).float()[labelled]
        return {"ce": F.cross_entropy(logits, batch["label"][labelled].long()), "logits": logits}


class DCL(DCLBaseline):
    """`--aux dcl`: adapter + classifier + adversarial head (+ alignment head on spatial maps) over cached
    features; spatial=True needs the cache's spatial maps and adds region alignment on an R x R grid, which reads
    the adapter at each position of the maps with either --dcl-network."""

    aligns = True  # region alignment reads the maps with either network

    def __init__(self, num_classes: int, feature_dim: int, options: MethodOptions | None = None, *,
                 spatial: bool, grid: int) -> None:
        o = options or MethodOptions.of({})
        super().__init__(num_classes, feature_dim, o, spatial=spatial)
        adv, test_logits, hidden = o.dcl_adv, o.dcl_test_logits, o.dcl_hidden
        adv_weight, align_weight = o.dcl_adv_weight, o.dcl_align_weight
        if adv not in ADV_MODES:
            raise ValueError(f"--dcl-adv: expected one of {ADV_MODES}, found {adv!r}")
        if test_logits not in TEST_LOGITS:
            raise ValueError(f"--dcl-test-logits: expected one of {TEST_LOGITS}, found {test_logits!r}")
        if test_logits == "sum" and adv != "swap":
            raise ValueError("--dcl-test-logits sum adds the swap classifier's logits, so it needs --dcl-adv swap "
                             f"(found --dcl-adv {adv}); use --dcl-test-logits original with the binary discriminator")
        self.grid, self.adv, self.test_logits = grid, adv, test_logits
        self.adversary = nn.Linear(hidden, 2 if adv == "binary" else 2 * num_classes)
        self.align = nn.Linear(hidden, 2) if self.maps else None  # 1x1 conv d -> 2
        if self.align is not None:  # start inside the ReLU's live range, at the targets' mean (R-1)/(2R)
            nn.init.constant_(self.align.bias, (grid - 1) / (2 * grid))
        self.loss_weights = {"ce": 1.0, "adv": float(adv_weight)}
        if self.maps:
            self.loss_weights["align"] = float(align_weight)
        # the binary discriminator and the alignment need no label: every training row; the swap head's
        # targets (y, y + C) do: labelled rows only
        self.uses_unlabelled = True
        self.component_rows = {"ce": "labelled", "adv": "ssl" if adv == "binary" else "labelled", "align": "ssl"}

    def alignment_map(self, hmap: Tensor) -> Tensor:
        """(B, R, R, 2) predicted (row, col) / R per region: 1x1 conv d -> 2, ReLU, adaptive avg pool to R x R."""
        m = F.relu(self.align(hmap)).permute(0, 3, 1, 2)  # (B, 2, h, w)
        return F.adaptive_avg_pool2d(m, self.grid).permute(0, 2, 3, 1)

    # --- test time ------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> Tensor:
        """Test-time class logits (B, C) of the original image (see module docstring for "sum")."""
        z, _ = self.embed(self._input(batch, "original"))
        logits = self.classifier(z)
        if self.test_logits == "sum":
            swap = self.adversary(z)
            logits = logits + swap[:, : self.num_classes] + swap[:, self.num_classes:]
        return logits

    # --- training -------------------------------------------------------------------------------
    def classification_loss(self, z: Tensor, label: Tensor) -> Tensor:
        """Paper eq. 4 (L_cls over I and phi(I)): the mean of CE(original, y) and CE(destructed, y)."""
        return F.cross_entropy(self.classifier(z), label.repeat(2))

    def adversarial_loss(self, z: Tensor, label: Tensor) -> Tensor:
        """Report eq. 5-6: CE of the 2-way discriminator (original 0, destructed 1) or 2C-way swap head (y, y + C)."""
        if self.adv == "binary":
            target = torch.cat([torch.zeros_like(label), torch.ones_like(label)])
        else:
            target = torch.cat([label, label + self.num_classes])
        return F.cross_entropy(self.adversary(z), target)

    def alignment_loss(self, hmap: Tensor, perm: Tensor) -> Tensor:
        """Report eq. 8: L1 from predicted to true (row, col) / R, mean over regions of both images."""
        perm = perm.to(hmap.device)
        identity = identity_permutation(perm.shape[0], self.grid, perm.device)
        target = torch.cat([alignment_targets(identity, self.grid), alignment_targets(perm, self.grid)])
        return F.l1_loss(self.alignment_map(hmap), target)

    def losses(self, batch: Batch) -> dict[str, Tensor]:
        """Unweighted scalar losses: "ce" (labelled rows), "adv" (binary: every row of the ssl part; swap:
        labelled rows) and, with spatial maps, "align" (every row of the ssl part)."""
        label = batch["label"].long()
        labelled, ssl = masks(batch)
        # each view through the adapter on its own: concatenating the (B, h, w, D) inputs would copy them
        (z_o, map_o), (z_d, map_d) = (self.embed(self._input(batch, v)) for v in ("original", "rcm"))
        if self.maps and not self.spatial:  # network "pooled": the same adapter at each position of the maps
            map_o, map_d = (self.position_map(self._input(batch, v, spatial=True)) for v in ("original", "rcm"))
        adv = ssl if self.adv == "binary" else labelled
        # rows [0, B) original, [B, 2B) destructed
        out = {"ce": self.classification_loss(torch.cat([z_o[labelled], z_d[labelled]]), label[labelled]),
               "adv": self.adversarial_loss(torch.cat([z_o[adv], z_d[adv]]), label[adv])}
        if self.maps:
            out["align"] = self.alignment_loss(torch.cat([map_o[ssl], map_d[ssl]]), batch["rcm_perm"][ssl])
        return out



def dcl_uses_spatial(options: MethodOptions) -> bool:
    """Region alignment runs when the training cache holds spatial maps of the original and RCM views."""
    return {"original", "rcm"} <= set(options.spatial_kinds)


def dcl_options(options: OptionsLike) -> MethodOptions:
    """The typed options of a DCL build; a run's saved record (config.json's builder_options, which lists every
    option a run was built with, and "aux") without dcl_network predates --dcl-network: its network was "maps"."""
    o = MethodOptions.of(options)
    if not isinstance(options, MethodOptions) and "aux" in options and "dcl_network" not in options:
        o = dataclasses.replace(o, dcl_network="maps")
    return o


def build_dcl(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    o = dcl_options(options)
    return DCL(num_classes, feature_dim, o, spatial=dcl_uses_spatial(o), grid=o.rcm_grid)


def build_dcl_baseline(options: OptionsLike, num_classes: int, feature_dim: int, num_train: int) -> Method:
    o = dcl_options(options)
    return DCLBaseline(num_classes, feature_dim, o, spatial=dcl_uses_spatial(o))


def dcl_reads(options: MethodOptions) -> frozenset[str]:
    return network_reads(dcl_uses_spatial(options), options.dcl_network, options.dcl_pca, destructs=DCL.aligns)


def dcl_none_reads(options: MethodOptions) -> frozenset[str]:
    return network_reads(dcl_uses_spatial(options), options.dcl_network, options.dcl_pca,
                         destructs=DCLBaseline.aligns)


def dcl_invalid(options: Mapping[str, Any]) -> str | None:
    """The summed test logits add the swap head's: with the binary discriminator there is none."""
    if options.get("dcl_test_logits") == "sum" and options.get("dcl_adv") != "swap":
        return "--dcl-test-logits sum needs --dcl-adv swap"
    return None


NETWORK_OPTIONS = ("dcl_hidden", "dcl_pca", "dcl_network")  # DCL's network: dcl and dcl-none alike
DCL_AUX = Declaration(
    "dcl", build_dcl, help="DCL destruction (+ construction with spatial maps)",
    glossary="DCL's adapter and classifier trained on the original and the region-confused (destructed) view, plus "
             "an adversarial original-vs-destructed loss and, with spatial maps, region alignment; the label-free "
             "losses see every training image",
    baseline="dcl-none",
    options=("dcl_adv", "dcl_adv_weight", "dcl_align_weight", "dcl_test_logits", *NETWORK_OPTIONS),
    reads=dcl_reads, reads_options=("dcl_network",), maps=True,
    without_maps="runs DCL's network on pooled features and trains destruction learning only (classification + "
                 "adversarial); construction learning (region alignment) needs extract-features --spatial",
    invalid=dcl_invalid)
DCL_NONE_AUX = Declaration(
    "dcl-none", build_dcl_baseline, help="DCL's network with cross-entropy only (DCL's same-network baseline)",
    glossary="DCL's adapter and classifier with cross-entropy on the original view only: **DCL's same-network "
             "baseline**",
    options=NETWORK_OPTIONS, reads=dcl_none_reads, reads_options=("dcl_network",), maps=True,
    without_maps="runs DCL's network on pooled features")
