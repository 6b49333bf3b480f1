"""Neural posterior estimation (NPE): a CNN embedding followed by a conditional normalizing flow.

Maths. Training pairs (theta_n, x_n) are draws from the simulator's joint p(theta) p(x | theta). The network
q_phi(theta | s_psi(x)), a normalizing flow over theta conditioned on a learned summary s_psi(x) of the image,
is fitted by minimising the negative log-likelihood

    L(phi, psi) = - E_{p(theta, x)} [ log q_phi(theta | s_psi(x)) ],

which equals E_{p(x)} KL(p(theta | x) || q_phi(theta | s_psi(x))) plus a constant: its minimiser, for a flexible
enough flow and summary, is the true posterior p(theta | x) under the training prior (Papamakarios & Murray 2016,
arXiv:1605.06376; Greenberg et al. 2019, arXiv:1905.07488, whose non-sequential case this is; the summary is
trained jointly with the flow, Radev et al. 2020, arXiv:2003.06281). The posterior is amortised: one forward
pass per image, then as many samples as wanted.

Pieces. The summary is `astrogen.models.blocks.CNNRegressor` (3x3 conv + ReLU + 2x2 max-pool blocks, fully
connected layers) with ``embedding`` outputs; ``channels: []`` makes it a fully connected network on the flattened
image (used by the tests on vectors as 1 x 1 "images"). The flow is zuko's (Rozet et al., github.com/probabilists/
zuko): a neural spline flow (``nsf``: monotonic rational-quadratic splines, Durkan et al. 2019, arXiv:1906.04032)
or a masked autoregressive flow (``maf``: affine, Papamakarios et al. 2017, arXiv:1705.07057), ``transforms``
autoregressive layers whose conditioners take the summary as context. Targets are parameter columns or sums
(``"frac_ps_disk+frac_ps_gc"``), standardised z = (theta - mean) / std with the training split's mean and
standard deviation (stored in the checkpoint); densities in physical units are
log p(theta | x) = log q(z | x) - sum_t log std_t. Posterior samples are not clipped to the prior's range
(`evaluate-model` reports the share that falls outside the training range).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import zuko
from pydantic import Field
from torch import nn

from astrogen.config import StrictModel
from astrogen.errors import DataError
from astrogen.models.blocks import CNNRegressor
from astrogen.models.inference import InferenceModule
from astrogen.models.regressor import target_matrix

SAMPLES_PER_PASS = 2**18  # posterior samples drawn in one pass of the flow (bounds memory)


class PosteriorConfig(StrictModel):
    """Embedding CNN and conditional flow."""

    channels: list[int] = Field(default_factory=lambda: [16, 32, 64, 128],
                                description="conv blocks of the embedding (each halves the image); [] = MLP")
    hidden: list[int] = Field(default_factory=lambda: [128], description="fully connected widths of the embedding")
    embedding: int = Field(32, ge=1, description="summary numbers the flow is conditioned on")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each hidden layer of the embedding")
    flow: Literal["nsf", "maf"] = Field("nsf", description="neural spline flow or masked autoregressive flow")
    transforms: int = Field(3, ge=1, description="autoregressive transforms of the flow")
    flow_hidden: list[int] = Field(default_factory=lambda: [64, 64], min_length=1,
                                   description="hidden widths of each transform's conditioner")
    bins: int = Field(8, ge=2, description="spline bins (nsf)")


class NeuralPosterior(nn.Module):
    """Summary network + conditional flow: ``forward(x)`` is the distribution q(z | s(x)) over standardised
    targets z ``[N, T]`` (``log_prob``, ``sample``)."""

    def __init__(self, image_shape: list[int], n_targets: int, config: PosteriorConfig):
        super().__init__()
        self.embedding = CNNRegressor(image_shape[0], tuple(image_shape[1:]), config.channels, config.hidden,
                                      config.embedding, config.dropout)
        kwargs = {"transforms": config.transforms, "hidden_features": list(config.flow_hidden)}
        if config.flow == "nsf":
            self.flow = zuko.flows.NSF(n_targets, config.embedding, bins=config.bins, **kwargs)
        else:
            self.flow = zuko.flows.MAF(n_targets, config.embedding, **kwargs)

    def forward(self, x: torch.Tensor):
        return self.flow(self.embedding(x))


class PosteriorModule(InferenceModule):
    """Lightning training of `NeuralPosterior`; the checkpoint holds the input transform and target scaling.

    Parameters
    ----------
    model : `PosteriorConfig` fields.
    image_shape : ``[C, H, W]`` of the inputs.
    targets : target names (columns or ``a+b`` sums); columns : the parameter columns the loader returns.
    target_mean, target_std : standardisation of each target (its units), fitted on the training split.
    target_low, target_high : range of each target on the training split (its units).
    transform : `Transform.to_dict()` of the fitted input transform (None: images go in as they are).
    lr, weight_decay : Adam settings.
    training_data : simulator, version and config of the training set (to flag a different test set).
    """

    task = "posterior"

    def __init__(self, model: dict, image_shape: list[int], targets: list[str], columns: list[str],
                 target_mean: list[float], target_std: list[float], target_low: list[float] | None = None,
                 target_high: list[float] | None = None, transform: dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 0.0, training_data: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.config = PosteriorConfig.model_validate(model)
        self.net = NeuralPosterior(list(image_shape), len(targets), self.config)
        self.register_buffer("matrix", torch.tensor(target_matrix(targets, columns), dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(target_mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(target_std, dtype=torch.float32))
        self._setup_transform(transform)

    def loss(self, batch: dict) -> torch.Tensor:
        """Mean negative log-density of the standardised targets of a batch (``image``, ``params``)."""
        z = (batch["params"] @ self.matrix - self.mean) / self.std
        return -self.net(batch["image"]).log_prob(z).mean()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(batch)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.log("val/loss", self.loss(batch), prog_bar=True, sync_dist=True, batch_size=len(batch["image"]))

    @torch.inference_mode()
    def log_prob(self, theta, images, batch_size: int = 256) -> np.ndarray:
        """log p(theta | x) ``[N]`` (nats; a density per unit of each target) of targets ``[N, T]`` given physical
        images ``[N, C, H, W]``."""
        self.eval()
        x = self.network_input(images)
        theta = torch.as_tensor(np.asarray(theta), dtype=torch.float32, device=self.device)
        if theta.shape != (len(x), len(self.hparams.targets)):
            raise DataError(f"posterior: targets {tuple(theta.shape)} do not fit {len(x)} images x "
                            f"{len(self.hparams.targets)} targets")
        z = (theta - self.mean) / self.std
        out = torch.cat([self.net(x[i:i + batch_size]).log_prob(z[i:i + batch_size]).cpu()
                         for i in range(0, len(x), batch_size)])
        return out.double().numpy() - float(torch.log(self.std.double()).sum())

    @torch.inference_mode()
    def sample(self, images, n_samples: int = 1000, seed: int = 0, batch_size: int = 256) -> np.ndarray:
        """Posterior samples ``[N, n_samples, T]`` (each target's units) given physical images ``[N, C, H, W]``;
        the same ``seed`` gives the same samples on the same device."""
        if n_samples < 1:
            raise DataError(f"n_samples must be >= 1, got {n_samples}")
        self.eval()
        x = self.network_input(images)
        chunk = max(1, min(batch_size, SAMPLES_PER_PASS // n_samples))
        devices = [self.device] if self.device.type == "cuda" else []
        out = []
        with torch.random.fork_rng(devices=devices):  # zuko samples from the global generator: seed it locally
            torch.manual_seed(seed)
            for i in range(0, len(x), chunk):
                z = self.net(x[i:i + chunk]).sample((n_samples,))  # [S, n, T]
                out.append((z * self.std + self.mean).transpose(0, 1).cpu())
        return torch.cat(out).double().numpy()

    def targets_of(self, params: dict[str, np.ndarray]) -> np.ndarray:
        """True targets ``[N, T]`` from a FieldSet's parameter columns."""
        columns = self.hparams.columns
        missing = sorted(set(columns) - set(params))
        if missing:
            raise DataError(f"the data lack parameter columns {missing} that the posterior's targets need")
        values = np.stack([np.asarray(params[c], dtype=np.float64) for c in columns], 1)
        return values @ self.matrix.cpu().double().numpy()
