"""Wasserstein GANs with gradient penalty: DCWGAN-GP, PIXGAN and VAEGAN (microwave-sky report, Han,
Sehgal & Villaescusa-Navarro 2021).

Networks (all images square, side a power of two >= 8, in the data transform's network space):

* `Critic` (shared by the three GANs): ``L`` stages of Conv 4x4 stride 2 + LeakyReLU(0.2) that halve the
  side down to 4 x 4 (``L = log2(size) - 2``; channels 64, 128, 256, ... doubling), then Linear -> 1. For
  128 x 128 and 5 input channels that is the report's table: 64 ... 1024 channels, 11,164,609 parameters.
  Conditional GANs (PIXGAN, VAEGAN) feed it the generator's input concatenated with its output.
* `DCGenerator` (DCWGAN-GP; in `astrogen.models.blocks`, as the VAE decodes with it): latent z ~ N(0, 1)
  (256) -> Linear -> 4 x 4 map -> transposed-conv 4x4 + BN + LeakyReLU stages -> transposed conv ->
  `LinearChannel` -> `ScaledTanh`; C output channels.
* `PixelGenerator` (``model.generator: pixel``, wgan; in `astrogen.models.blocks`): the latent broadcast to every
  pixel with the pixel's coordinates, then per-pixel layers only (a spatial broadcast decoder). On the 1-blob
  set it draws one blob per map where the DC generator draws several (see docs/gans.md). With ``sources`` it
  draws a sum of that many sources, each from its own latent.
* `BeamGenerator` (``model.generator: beam``, wgan; in `astrogen.models.blocks`): point sources seen through a
  known Gaussian beam (``model.beam_fwhm``): an MLP draws each source's position and flux from its own latent,
  and the source's shape is the beam's, exact (the blob sets, whose chi^2 tests reject shape errors of 1e-3).
* `UNetGenerator` (PIXGAN): input channels (e.g. kappa) -> U-Net -> the other channels (e.g. tSZ, kSZ, CIB,
  radio); conv + BN + LeakyReLU down, transposed conv + BN + ReLU up, skip concatenations, no BN on the
  first and last layers.
* `VAEGenerator` (VAEGAN): encoder -> (mu, log var) -> reparameterised z -> decoder; the input (mapped back
  through the inverse `ScaledTanh`) is concatenated to the decoder output and a 1x1 convolution mixes the
  two, so the network only has to learn the residual, non-Gaussian part of the map.

Loss (Gulrajani et al. 2017): the critic minimises D(fake) - D(real) + lambda (||grad D(x_hat)||_2 - 1)^2
on random interpolates x_hat = e x_real + (1 - e) x_fake; the generator minimises -D(fake). The report
writes the penalty as lambda ||grad D(x_hat)||_2, without the -1 and the square: that form pushes the
critic towards a zero gradient (a constant critic) instead of a 1-Lipschitz one, so the published form is
implemented. Each batch is one critic step; every ``n_critic``-th batch is also a generator step. Adam with
beta1 = 0.5, beta2 = 0.9. With manual optimisation Lightning counts every optimizer step, so ``max_steps``
counts critic and generator steps together. Samples come from an exponential moving average of the
generator's weights (``ema_decay``; Yazici et al. 2019, arXiv:1806.04498), which damps the oscillation of
the adversarial game; the raw generator is what the critic trains against.

Output layer: ``tanh`` (the report's, `ScaledTanh`) bounds the output to (-scale, scale); it cannot reach an
exact value, so an empty background comes out as low-level noise, whose bumps count as peaks. ``floor``
(`Floor`) is the identity above a hard floor at -scale, for data with an exact minimum that fills much of the
image (the blob sets: MinMax puts their zero background at -1, so scale 1): the network can then draw an
exactly flat background. ``exp`` (`Exp`) draws exp(x) - scale: smooth above the same floor, which it reaches
exactly (in float32) far from any bump; the network then draws the log of the field. ``gauss`` (`Gauss`) draws
2 scale exp(-x^2) - scale: a Gaussian bump is the image of a cone, for one bump per map (overlaps do not add)
or per source of a many-source `PixelGenerator` (the sources add).
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn
from torch.optim.swa_utils import AveragedModel

from astrogen.config import KIND_KEY, StrictModel
from astrogen.data.transforms import Transform
from astrogen.distributed import draw_rows
from astrogen.errors import ConfigError, DataError
from astrogen.models.blocks import (
    OUTPUTS,
    BeamGenerator,
    ConvEncoder,
    DCGenerator,
    LinearChannel,
    PixelGenerator,
    doubling_widths,
    ema_warmup_avg_fn,
    kl_divergence,
    reparameterise,
    stride2_levels,
)
from astrogen.models.optim import AveragedOptimConfig
from astrogen.tasks import check_sample_request

# --------------------------------------------------------------------------------------------------
# Networks.


class Critic(ConvEncoder):
    """The WGAN critic: `ConvEncoder` without normalisation and one output (an unbounded score)."""

    def __init__(self, in_channels: int, size: int, base: int = 64, coords: bool = False):
        super().__init__(in_channels, size, 1, base, norm=False, coords=coords)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)[:, 0]


class UNetGenerator(nn.Module):
    """The PIXGAN U-Net: ``[N, in_channels, S, S]`` -> ``[N, out_channels, S, S]`` (bounded by `ScaledTanh`).

    Down: conv 4x4 stride 2 + BN + LeakyReLU(0.2) to 4 x 4 (no BN on the first); up: transposed conv 4x4
    stride 2 + BN + ReLU, each fed the previous stage concatenated with the matching down stage; the last
    transposed conv has no BN and is followed by `LinearChannel` and `ScaledTanh`.
    """

    def __init__(self, in_channels: int, out_channels: int, size: int, base: int = 64, scale: float = 1.0,
                 output: str = "tanh"):
        super().__init__()
        widths = doubling_widths(stride2_levels(size), base)
        self.down = nn.ModuleList()
        for i, (c_in, c_out) in enumerate(zip([in_channels, *widths[:-1]], widths)):
            norm = [nn.BatchNorm2d(c_out)] if i > 0 else []
            self.down.append(nn.Sequential(nn.Conv2d(c_in, c_out, 4, 2, 1), *norm, nn.LeakyReLU(0.2)))
        self.up = nn.ModuleList()
        # Up stage j takes the deepest map (j = 0) or the previous up output + the skip: 2x its width.
        for j in range(len(widths) - 1):
            c_in = widths[-1 - j] * (1 if j == 0 else 2)
            c_out = widths[-2 - j]
            self.up.append(nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.ReLU()))
        last_in = widths[0] * (2 if len(widths) > 1 else 1)
        self.out = nn.Sequential(nn.ConvTranspose2d(last_in, out_channels, 4, 2, 1), LinearChannel(out_channels),
                                 OUTPUTS[output](scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.down:
            x = stage(x)
            skips.append(x)
        for j, stage in enumerate(self.up):
            x = stage(x if j == 0 else torch.cat([x, skips[-1 - j]], 1))
        return self.out(x if not self.up else torch.cat([x, skips[0]], 1))


class VAEGenerator(nn.Module):
    """The VAEGAN generator: ``[N, C, S, S]`` -> encoder -> z -> decoder, plus the input itself.

    The input, mapped back through the inverse of the output layer, is concatenated to the decoder's
    C channels; a 1x1 convolution, `LinearChannel` and the output layer give the output. ``forward`` returns
    (output, mu, log_var).
    """

    def __init__(self, channels: int, size: int, latent: int = 256, base: int = 64, scale: float = 1.0,
                 output: str = "tanh", coords: bool = False):
        super().__init__()
        self.encoder = ConvEncoder(channels, size, 2 * latent, base, norm=True)
        self.decoder = DCGenerator(latent, channels, size, base, scale, output, coords)
        self.squash = self.decoder.stages[-1]
        self.mix = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), LinearChannel(channels),
                                 OUTPUTS[output](scale))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        mu, log_var = self.encoder(x).chunk(2, 1)
        decoded = self.decoder(reparameterise(mu, log_var, generator))
        return self.mix(torch.cat([decoded, self.squash.inverse(x)], 1)), mu, log_var


# --------------------------------------------------------------------------------------------------
# Loss.


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Mean over the batch of (||grad_x D(x_hat)||_2 - 1)^2 at x_hat = e real + (1 - e) fake, e ~ U(0, 1)
    per sample (Gulrajani et al. 2017); multiply by lambda (10 in the report) in the critic loss."""
    e = draw_rows(torch.rand, len(real), (1,) * (real.ndim - 1), generator, real.device).to(real.dtype)
    x_hat = (e * real.detach() + (1 - e) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


# --------------------------------------------------------------------------------------------------
# Network and optimiser configuration.

GAN_KINDS = ("wgan", "pixgan", "vaegan")


class GANNetConfig(StrictModel):
    """Network sizes: ``base`` channels of the first critic stage (64 in the report) and of the DC generator's
    last stage, latent size, the generator (wgan), the output layer (``tanh``: `ScaledTanh`, bounded to
    (-scale, scale), the transformed data should lie well inside it; ``floor``: `Floor`, a hard floor at -scale,
    which should be the data's minimum in network units; ``exp``: `Exp`, exp(x) - scale, smooth above that floor;
    ``gauss``: `Gauss`, 2 scale exp(-x^2) - scale, in (-scale, scale], for one bump per map)."""

    base: int = Field(64, ge=1)
    latent: int = Field(256, ge=1)
    scale: float = Field(1.0, gt=0)
    output: Literal["tanh", "floor", "exp", "gauss"] = Field("tanh", description="not the beam generator's")
    generator: Literal["dc", "pixel", "beam"] = Field("dc", description="wgan: the DC generator (the report's), "
                                                      "`PixelGenerator` (per-pixel layers on the broadcast latent) "
                                                      "or `BeamGenerator` (point sources through a Gaussian beam)")
    width: int = Field(64, ge=1, description="PixelGenerator, BeamGenerator: hidden channels")
    depth: int = Field(3, ge=1, description="PixelGenerator: per-pixel hidden layers; BeamGenerator: hidden layers")
    sources: int = Field(1, ge=1, description="PixelGenerator, BeamGenerator: each map is the sum of this many "
                         "sources, each drawn from its own latent, added above the floor -scale (overlaps add)")
    peak_normalised: bool = Field(False, description="PixelGenerator, BeamGenerator: each map divided above the "
                                  "floor by its maximum, so it peaks at +scale (sets of maps divided by their maximum)")
    beam_fwhm: float | None = Field(None, gt=0, description="BeamGenerator (required): the beam's full width at "
                                    "half maximum, pixels")
    coords: bool = Field(False, description="CoordConv: coordinate channels before every convolution of the DC "
                         "generator (wgan, the vaegan decoder) and the critic")


class GANOptimConfig(AveragedOptimConfig):
    """`AveragedOptimConfig` for both networks (``lr`` the generator's), plus the critic's learning rate, Adam's
    betas, the critic-to-generator step ratio and the loss weights."""

    lr_critic: float | None = Field(None, gt=0, description="the critic's learning rate (None: lr)")
    betas: tuple[float, float] = (0.5, 0.9)
    n_critic: int = Field(5, ge=1, description="critic steps per generator step")
    gp_weight: float = Field(10.0, ge=0, description="lambda of the gradient penalty")
    kl_weight: float = Field(1e-3, ge=0, description="VAEGAN: weight of the KL term")
    l1_weight: float = Field(0.0, ge=0, description="PIXGAN/VAEGAN: weight of an L1 term to the target")

    @model_validator(mode="before")
    @classmethod
    def _generator_lr_is_lr(cls, values):
        """``lr_generator``, the key before every kind shared `OptimConfig` (shipped models store it), is ``lr``."""
        if isinstance(values, dict) and "lr_generator" in values:
            values = {"lr": values["lr_generator"], **{k: v for k, v in values.items() if k != "lr_generator"}}
        return values


# --------------------------------------------------------------------------------------------------
# The LightningModule.


class GANModule(L.LightningModule):
    """Lightning training of a WGAN-GP (manual optimisation); the checkpoint carries the data transform and
    metadata, so `astrogen.generate.sample_to_file` writes samples in physical units.

    Parameters
    ----------
    kind : ``wgan`` (noise -> all channels), ``pixgan`` (``inputs`` channels -> the others) or ``vaegan``
        (all channels -> all channels).
    model, optim : `GANNetConfig` and `GANOptimConfig` fields.
    image_shape : ``[C, H, W]`` of the training images.
    channels : channel names, in order; ``inputs`` must be among them.
    transform : `Transform.to_dict()` of the fitted data transform (physical -> network space).
    data_meta : `FieldMeta.to_attrs()` of the training set.
    """

    def __init__(self, kind: str, model: dict, optim: dict, image_shape: list[int], channels: list[str],
                 inputs: list[str] | tuple = (), transform: dict | None = None, data_meta: dict | None = None):
        super().__init__()
        self.save_hyperparameters()
        self.automatic_optimization = False
        if kind not in GAN_KINDS:
            raise ConfigError(f"unknown GAN kind {kind!r}; choose one of {', '.join(GAN_KINDS)}")
        net, self.optim_config = GANNetConfig.model_validate(model), GANOptimConfig.model_validate(optim)
        n_channels, height, width = image_shape
        if height != width:
            raise DataError(f"GANs need square images, got {height} x {width}")
        unknown = sorted(set(inputs) - set(channels))
        if unknown:
            raise ConfigError(f"inputs {unknown} are not channels of the data {channels}")
        if net.generator != "dc" and kind != "wgan":
            raise ConfigError(f"model.generator: {net.generator} is a wgan generator; {kind} builds its own")
        if (net.sources > 1 or net.peak_normalised) and net.generator == "dc":
            raise ConfigError("model.sources and model.peak_normalised need model.generator: pixel or beam")
        if (net.generator == "beam") != (net.beam_fwhm is not None):
            raise ConfigError("model.beam_fwhm goes with model.generator: beam, and only with it")
        if net.generator == "beam" and net.output != "tanh":
            raise ConfigError("model.output: the beam generator has no output layer (its sources sit on the floor)")
        if (kind == "pixgan") != bool(inputs) or len(inputs) >= n_channels:
            raise ConfigError("pixgan needs 'inputs': some, not all, channels; the other kinds take none")
        self.input_index = [channels.index(c) for c in inputs]
        self.output_index = [i for i in range(n_channels) if i not in self.input_index]
        n_in, n_out = len(self.input_index), len(self.output_index)
        if kind == "wgan":
            if net.generator == "pixel":
                self.generator = PixelGenerator(net.latent, n_channels, height, net.width, net.depth, net.scale,
                                                net.output, net.sources, net.peak_normalised)
            elif net.generator == "beam":
                self.generator = BeamGenerator(net.latent, n_channels, height, net.beam_fwhm, net.width, net.depth,
                                               net.scale, net.sources, net.peak_normalised)
            else:
                self.generator = DCGenerator(net.latent, n_channels, height, net.base, net.scale, net.output,
                                             net.coords)
            critic_channels = n_channels
        elif kind == "pixgan":
            self.generator = UNetGenerator(n_in, n_out, height, net.base, net.scale, net.output)
            critic_channels = n_channels
        else:
            self.generator = VAEGenerator(n_channels, height, net.latent, net.base, net.scale, net.output,
                                          net.coords)
            critic_channels = 2 * n_channels
        self.critic = Critic(critic_channels, height, net.base, net.coords)
        self.generator_ema = AveragedModel(self.generator, multi_avg_fn=ema_warmup_avg_fn(self.optim_config.ema_decay),
                                           use_buffers=True)
        self.generator_ema.requires_grad_(False)
        self.kind, self.latent = kind, net.latent * net.sources
        self.transform = Transform.from_dict(transform) if transform else None
        self.last_real: torch.Tensor | None = None
        self.last_fake: torch.Tensor | None = None

    def _fake(self, x: torch.Tensor, generator: torch.Generator | None = None, network: nn.Module | None = None):
        """(generated counterpart of network-space batch ``x``, VAEGAN's KL term or None) from ``network`` (the
        generator by default): wgan ignores ``x`` but its size, pixgan keeps its input channels and fills the
        others, vaegan maps the whole of it."""
        network = self.generator if network is None else network
        if self.kind == "wgan":
            z = draw_rows(torch.randn, x.shape[0], (self.latent,), generator, x.device).to(x.dtype)
            return network(z), None
        if self.kind == "pixgan":
            out = torch.empty_like(x)
            out[:, self.input_index] = x[:, self.input_index]
            out[:, self.output_index] = network(x[:, self.input_index])
            return out, None
        out, mu, log_var = network(x, generator)
        return out, kl_divergence(mu, log_var).mean()

    def _critic_view(self, x: torch.Tensor, sample: torch.Tensor) -> torch.Tensor:
        """What the critic judges: the sample, or for vaegan the input and the sample side by side."""
        return torch.cat([x, sample], 1) if self.kind == "vaegan" else sample

    def training_step(self, batch: dict, batch_idx: int) -> dict:
        opt_g, opt_d = self.optimizers()
        x = batch["image"]
        o = self.optim_config
        with torch.no_grad():  # the critic step needs no graph through the generator
            fake, _ = self._fake(x)
        real_view, fake_view = self._critic_view(x, x), self._critic_view(x, fake)
        wasserstein = self.critic(real_view).mean() - self.critic(fake_view).mean()
        penalty = gradient_penalty(self.critic, real_view, fake_view)
        d_loss = -wasserstein + o.gp_weight * penalty
        opt_d.zero_grad(set_to_none=True)
        self.manual_backward(d_loss)
        self._clip(opt_d)
        opt_d.step()
        out = {"d_loss": d_loss.detach(), "wasserstein": wasserstein.detach()}
        self.log_dict({"train/d_loss": out["d_loss"], "train/wasserstein": out["wasserstein"],
                       "train/gp": penalty.detach()}, prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        if batch_idx % o.n_critic == 0:
            self.toggle_optimizer(opt_g)  # no critic gradients in the generator step
            fake, kl = self._fake(x)
            g_loss = -self.critic(self._critic_view(x, fake)).mean()
            if kl is not None:
                g_loss = g_loss + o.kl_weight * kl
            if o.l1_weight and self.kind != "wgan":
                g_loss = g_loss + o.l1_weight * F.l1_loss(fake, x)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(g_loss)
            self._clip(opt_g)
            opt_g.step()
            self.untoggle_optimizer(opt_g)
            self.generator_ema.update_parameters(self.generator)
            out["g_loss"] = g_loss.detach()
            self.log("train/g_loss", out["g_loss"], prog_bar=True, sync_dist=True, batch_size=x.shape[0])
        self.last_real, self.last_fake = x.detach(), fake.detach()
        return out

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        x = batch["image"]
        fake, _ = self._fake(x, torch.Generator().manual_seed(10_000 + batch_idx))
        wasserstein = self.critic(self._critic_view(x, x)).mean() - self.critic(self._critic_view(x, fake)).mean()
        self.log("val/wasserstein", wasserstein, sync_dist=True, batch_size=x.shape[0])

    def _clip(self, optimizer) -> None:
        """Clip the gradients of ``optimizer``'s network to norm ``optim.grad_clip`` (manual optimisation: the
        Trainer does not)."""
        clip = self.optim_config.grad_clip
        if clip is not None:
            self.clip_gradients(optimizer, gradient_clip_val=clip, gradient_clip_algorithm="norm")

    def configure_optimizers(self):
        o = self.optim_config
        lr_critic = o.lr if o.lr_critic is None else o.lr_critic
        return (torch.optim.Adam(self.generator.parameters(), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay),
                torch.optim.Adam(self.critic.parameters(), lr=lr_critic, betas=o.betas, weight_decay=o.weight_decay))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[KIND_KEY] = "gan"

    @staticmethod
    def upgrade_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A state dict from before the generator average: its average starts as the generator itself."""
        if any(k.startswith("generator_ema.") for k in state):
            return state
        average = {f"generator_ema.module.{k[len('generator.'):]}": v for k, v in state.items()
                   if k.startswith("generator.")}
        return {**state, **average, "generator_ema.n_averaged": torch.tensor(1)}

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return super().load_state_dict(self.upgrade_state_dict(state_dict), strict=strict, assign=assign)

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The state a model folder keeps (`astrogen.tasks.export_model`): the averaged generator's weights as
        the generator's; sampling needs no critic (fine-tune from the training checkpoint, which has it)."""
        return {f"generator.{k}": v for k, v in self.generator_ema.module.state_dict().items()}

    def load_exported_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of `exported_state`: the generator and its average both get the stored weights (the critic
        keeps its initialisation); a folder that kept the critic loads whole."""
        if any(k.startswith("critic.") for k in state):
            self.load_state_dict(state)
            return
        own = {k for k in self.state_dict() if k.startswith("generator.")}
        if own != set(state):
            missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}")
        self.load_state_dict(state, strict=False)
        self.generator_ema.module.load_state_dict(self.generator.state_dict())

    conditions, sampling_options = (), {}

    @property
    def takes_inputs(self) -> bool:
        """pixgan and vaegan map input images to outputs; a wgan draws from noise."""
        return self.kind != "wgan"

    @torch.inference_mode()
    def sample(self, n: int, generator: torch.Generator | None = None, *, conditions: torch.Tensor | None = None,
               inputs: torch.Tensor | None = None, **options) -> torch.Tensor:
        """``n`` samples in physical units from the averaged generator (`astrogen.tasks.Generative`): from noise
        (wgan), or one per map of ``inputs`` ``[n, C, H, W]`` in physical units (pixgan: only the ``inputs``
        channels are read; vaegan: all)."""
        check_sample_request(self, n, conditions, inputs, options)
        network = self.generator_ema.module.eval()
        if inputs is None:
            x = torch.empty((n, *self.hparams.image_shape), device=self.device)
        else:
            if tuple(inputs.shape[1:]) != tuple(self.hparams.image_shape):
                raise DataError(f"inputs have shape {tuple(inputs.shape[1:])}, the model takes "
                                f"{tuple(self.hparams.image_shape)}")
            x = inputs.float().to(self.device)
            if self.transform is not None:
                x = self.transform.forward(x)
        fake, _ = self._fake(x, generator, network)
        return fake if self.transform is None else self.transform.inverse(fake)


__all__ = ["Critic", "GANModule", "UNetGenerator", "VAEGenerator", "gradient_penalty"]
