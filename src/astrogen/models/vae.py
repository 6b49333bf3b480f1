"""Convolutional variational autoencoder (Kingma & Welling 2014) on any FieldSet of 2D images.

Encoder: `ConvEncoder` (conv 4x4 stride 2 + BN + LeakyReLU stages to 4 x 4, Linear) with a mean head and a
log-variance head; z = mu + exp(log_var / 2) eps; decoder: `DCGenerator` (the DCWGAN-GP generator).

Loss: the negative evidence lower bound per image, in nats for a Gaussian likelihood of unit variance in
network space (constants dropped),

    -ELBO = 1/2 sum_pixels (x - x_rec)^2 + beta KL(q(z | x) || N(0, 1)),

beta = 1 being the true ELBO and beta > 1 the beta-VAE (Higgins et al. 2017).
"""

from __future__ import annotations

import lightning as L
import torch
from pydantic import Field

from astrogen.config import KIND_KEY, StrictModel
from astrogen.data.transforms import Transform
from astrogen.errors import ConfigError, DataError
from astrogen.models.blocks import ConvEncoder, DCGenerator, kl_divergence, reparameterise
from astrogen.models.optim import OptimConfig
from astrogen.tasks import check_sample_request


class VAENetConfig(StrictModel):
    """Network sizes: channels of the first encoder stage (doubling), latent dimension, output bound."""

    base: int = Field(32, ge=1)
    latent: int = Field(32, ge=1)
    scale: float = Field(3.0, gt=0, description="ScaledTanh bound of the decoder output, network units")


class VAEOptimConfig(OptimConfig):
    """`OptimConfig` (Adam) plus the weight of the KL term."""

    beta: float = Field(1.0, ge=0, description="KL weight (1 = ELBO, > 1 = beta-VAE)")


def negative_elbo(x: torch.Tensor, reconstruction: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor,
                  beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batch means of (-ELBO, reconstruction term, KL term), nats per image (see the module docstring)."""
    recon = 0.5 * (x - reconstruction).pow(2).flatten(1).sum(1).mean()
    kl = kl_divergence(mu, log_var).mean()
    return recon + beta * kl, recon, kl


class VAEModule(L.LightningModule):
    """Lightning training of a convolutional VAE; the checkpoint carries the data transform and metadata.

    Parameters
    ----------
    model : `VAENetConfig` fields; optim : `VAEOptimConfig` fields.
    image_shape : ``[C, H, W]``, square with a power-of-two side >= 8.
    transform : `Transform.to_dict()` of the fitted data transform; data_meta : the training set's attrs.
    """

    def __init__(self, model: dict, optim: dict, image_shape: list[int], transform: dict | None = None,
                 data_meta: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.net, self.optim_config = VAENetConfig.model_validate(model), VAEOptimConfig.model_validate(optim)
        channels, height, width = image_shape
        if height != width:
            raise DataError(f"the VAE needs square images, got {height} x {width}")
        self.encoder = ConvEncoder(channels, height, 2 * self.net.latent, self.net.base, norm=True)
        self.decoder = DCGenerator(self.net.latent, channels, height, self.net.base, self.net.scale)
        self.transform = Transform.from_dict(transform) if transform else None

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Network-space images -> (mu, log_var), each ``[N, latent]``."""
        return self.encoder(x).chunk(2, 1)

    def forward(self, x: torch.Tensor):
        """(reconstruction, mu, log_var) of network-space images ``x``."""
        mu, log_var = self.encode(x)
        return self.decoder(reparameterise(mu, log_var)), mu, log_var

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        x = batch["image"]
        loss, recon, kl = negative_elbo(x, *self(x), beta=self.optim_config.beta)
        self.log_dict({f"{stage}/loss": loss, f"{stage}/reconstruction": recon, f"{stage}/kl": kl},
                      prog_bar=stage == "train", sync_dist=True, batch_size=x.shape[0])
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.optim_config.lr, weight_decay=self.optim_config.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[KIND_KEY] = "vae"

    def _physical(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.transform is None else self.transform.inverse(x)

    kind, conditions, takes_inputs, sampling_options = "vae", (), False, {}

    @torch.inference_mode()
    def sample(self, n: int, generator: torch.Generator | None = None, *, conditions: torch.Tensor | None = None,
               inputs: torch.Tensor | None = None, **options) -> torch.Tensor:
        """``n`` images in physical units decoded from z ~ N(0, 1) drawn from ``generator``
        (`astrogen.tasks.Generative`: no conditions, inputs or options)."""
        check_sample_request(self, n, conditions, inputs, options)
        self.eval()
        z = torch.randn((n, self.net.latent), generator=generator).to(self.device)
        return self._physical(self.decoder(z))

    @torch.inference_mode()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Physical-unit images ``[N, C, H, W]`` -> their reconstructions from the posterior mean."""
        self.eval()
        x = images.float().to(self.device)
        x = x if self.transform is None else self.transform.forward(x)
        return self._physical(self.decoder(self.encode(x)[0]))

    @torch.inference_mode()
    def latent_traversal(self, dims: tuple[int, int] = (0, 1), n: int = 7, span: float = 2.5) -> torch.Tensor:
        """Decode a grid varying latent dimensions ``dims`` over [-span, span] (others 0): ``[n, n, C, H, W]``
        in physical units (rows vary ``dims[0]``, columns ``dims[1]``)."""
        if len(set(dims)) != 2 or not all(0 <= d < self.net.latent for d in dims):
            raise ConfigError(f"dims must be two different latent dimensions in 0..{self.net.latent - 1}, got {dims}")
        self.eval()
        values = torch.linspace(-span, span, n)
        z = torch.zeros(n, n, self.net.latent)
        z[:, :, dims[0]] = values[:, None]
        z[:, :, dims[1]] = values[None, :]
        images = self._physical(self.decoder(z.reshape(n * n, -1).to(self.device)))
        return images.reshape(n, n, *images.shape[1:])


__all__ = ["VAEModule", "negative_elbo"]
