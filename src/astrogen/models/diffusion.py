"""Denoising diffusion (DDPM, Ho et al. 2020) with continuous conditioning on physical parameters.

Maths (diffusers' 0-based indexing: step t = 0..T-1 uses beta_t, abar_t = prod_{s<=t} (1 - beta_s)):

* forward step     x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps
* closed form      x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps
* posterior mean   mu(x_t, eps) = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t),  alpha_t = 1 - beta_t

The matter-field report writes beta_t for sqrt(beta_t) in the forward step and 1/sqrt(abar_t) for
1/sqrt(alpha_t) in the posterior mean; both slips bias the generated mean. `NoiseSchedule` holds the
published forms and the tests check them against the marginal variance and the analytic posterior.

The network is diffusers' `UNet2DModel`; the samplers are diffusers' DDPM (ancestral), DDIM and
DPM-Solver++ (multistep) schedulers built from one config. Conditions (e.g. redshift, Omega_m) are
standardised, embedded (sinusoidal features + MLP) and added to the time embedding through the UNet's
identity class embedding; a dropped condition contributes zero, which gives the unconditional model
for classifier-free guidance.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar, Literal

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.models.embeddings import get_timestep_embedding
from pydantic import Field, model_validator
from torch import nn
from torch.optim.swa_utils import AveragedModel

from astrogen.config import KIND_KEY, StrictModel
from astrogen.data.transforms import Transform
from astrogen.distributed import draw_rows
from astrogen.errors import ConfigError, DataError
from astrogen.models.blocks import ema_warmup_avg_fn
from astrogen.models.optim import AveragedOptimConfig
from astrogen.stats.compare import RANGE_MARGIN
from astrogen.tasks import check_sample_request

SAMPLERS = ("ddpm", "ddim", "dpm")

MODEL_PRESETS = {
    # CPU demo: ~1.5 M parameters, attention at the two coarsest levels.
    "small": {"channels": [32, 64, 64], "layers_per_block": 1, "attention_levels": 2},
    # Report scale (GPU): ~60 M parameters for 64x64 inputs.
    "full": {"channels": [128, 256, 256, 256], "layers_per_block": 2, "attention_levels": 2},
}


class DiffusionConfig(StrictModel):
    """Network and diffusion settings; ``preset`` fills ``channels``, ``layers_per_block`` and
    ``attention_levels`` where they are not given."""

    preset: Literal["small", "full"] = "small"
    channels: list[int] | None = Field(None, description="UNet widths per resolution level")
    layers_per_block: int | None = Field(None, ge=1, description="ResNet blocks per level")
    attention_levels: int | None = Field(None, ge=0, description="self-attention at this many coarsest levels")
    attention_heads: int = Field(4, ge=1)
    periodic: bool = Field(False, description="circular padding in every convolution (periodic fields)")
    timesteps: int = Field(1000, ge=2, description="T, number of diffusion steps")
    schedule: Literal["linear", "cosine"] = "linear"
    beta_start: float = Field(1e-4, gt=0, lt=1)
    beta_end: float = Field(0.02, gt=0, lt=1)
    prediction: Literal["epsilon", "v"] = "epsilon"
    loss: Literal["mse", "huber"] = "mse"
    snr_gamma: float | None = Field(None, gt=0, description="min-SNR-gamma loss weighting (Hang et al. 2023); "
                                    "None weights every t equally in the prediction's own loss")
    cond_features: int = Field(64, ge=2, description="sinusoidal features per condition")

    @model_validator(mode="after")
    def _fill_and_check(self):
        for key, value in MODEL_PRESETS[self.preset].items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if not self.channels or min(self.channels) < 8:
            raise ValueError("channels must list widths >= 8")
        if self.attention_levels > len(self.channels):
            raise ValueError("attention_levels exceeds the number of levels")
        if any(c % self.attention_heads for c in self.channels[len(self.channels) - self.attention_levels :]):
            raise ValueError("attention widths must be divisible by attention_heads")
        return self


class DiffusionOptimConfig(AveragedOptimConfig):
    """`AveragedOptimConfig` (AdamW) plus a linear warm-up of the learning rate."""

    warmup_steps: int = Field(500, ge=0, description="steps of linear learning-rate warm-up from 0")


class NoiseSchedule(nn.Module):
    """The DDPM forward process and posterior for a beta schedule (tensors indexed by t = 0..T-1)."""

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = betas.double()
        self.register_buffer("betas", betas, persistent=False)
        self.register_buffer("alphas_cumprod", torch.cumprod(1 - betas, 0), persistent=False)

    def _at(self, values: torch.Tensor, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return values.to(x.device)[t].to(x.dtype).view(-1, *[1] * (x.ndim - 1))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (closed-form forward process)."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * eps

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) eps (one forward step)."""
        beta = self._at(self.betas, t, x_prev)
        return (1 - beta).sqrt() * x_prev + beta.sqrt() * eps

    def posterior_mean(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """mu = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), the mean of p(x_{t-1} | x_t)."""
        beta, abar = self._at(self.betas, t, x_t), self._at(self.alphas_cumprod, t, x_t)
        return (x_t - beta / (1 - abar).sqrt() * eps) / (1 - beta).sqrt()

    def velocity(self, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0 (Salimans & Ho 2022), the v-prediction target."""
        abar = self._at(self.alphas_cumprod, t, x0)
        return abar.sqrt() * eps - (1 - abar).sqrt() * x0


def make_scheduler(config: DiffusionConfig, sampler: str = "ddpm"):
    """A diffusers scheduler for ``sampler`` (ddpm, ddim or dpm = DPM-Solver++ multistep).

    DDIM's steps are uniform in t, which under-resolves the low-noise end: with 50 steps it returns
    about 0.9 of a unit-scale Gaussian's variance and 0.6 of a narrow one's (std 0.1). Prefer ``dpm``
    (20 steps, uniform in log-SNR) or ``ddpm`` with all T steps when the spread matters.
    """
    common = {
        "num_train_timesteps": config.timesteps,
        "beta_schedule": "linear" if config.schedule == "linear" else "squaredcos_cap_v2",
        "beta_start": config.beta_start,
        "beta_end": config.beta_end,
        "prediction_type": "epsilon" if config.prediction == "epsilon" else "v_prediction",
        # "trailing" spacing keeps the last sampling step at t = T - 1 (Lin et al. 2024).
        "timestep_spacing": "trailing",
    }
    if sampler == "ddpm":
        return DDPMScheduler(**common, clip_sample=False)
    if sampler == "ddim":
        return DDIMScheduler(**common, clip_sample=False, set_alpha_to_one=False)
    if sampler == "dpm":
        # Steps uniform in log-SNR (Lu et al. 2022): with diffusers' default uniform-t steps, 20 steps
        # give a narrow Gaussian (std 0.1) only a quarter of its variance; with these, within 2%.
        return DPMSolverMultistepScheduler(**common, algorithm_type="dpmsolver++", solver_order=2,
                                           use_lu_lambdas=True)
    raise ConfigError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")


class ConditionEmbedding(nn.Module):
    """Standardised conditions ``[N, P]`` -> sinusoidal features per condition -> MLP -> ``[N, dim]``."""

    def __init__(self, n_conditions: int, dim: int, features: int):
        super().__init__()
        self.features = features
        self.mlp = nn.Sequential(nn.Linear(n_conditions * features, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        # Scale by 1000 so standardised values (order 1) span the frequencies used for timesteps.
        waves = get_timestep_embedding(cond.reshape(-1) * 1000, self.features, flip_sin_to_cos=True,
                                       downscale_freq_shift=0)
        return self.mlp(waves.reshape(cond.shape[0], -1).to(cond.dtype))


class Denoiser(nn.Module):
    """UNet2DModel predicting eps (or v) from (x_t, t, conditions), with optional periodic padding."""

    def __init__(self, config: DiffusionConfig, channels: int, size: int, n_conditions: int = 0):
        super().__init__()
        levels = len(config.channels)
        if size % 2 ** (levels - 1):
            raise DataError(f"image size {size} must be divisible by 2^{levels - 1} for {levels} UNet levels")
        attention = [i >= levels - config.attention_levels for i in range(levels)]
        self.unet = UNet2DModel(
            sample_size=size,
            in_channels=channels,
            out_channels=channels,
            block_out_channels=tuple(config.channels),
            layers_per_block=config.layers_per_block,
            down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
            up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
            attention_head_dim=config.channels[-1] // config.attention_heads,
            norm_num_groups=min(32, config.channels[0] // 4),
            class_embed_type="identity" if n_conditions else None,
        )
        if config.periodic:
            for module in self.unet.modules():
                if isinstance(module, nn.Conv2d) and any(module.padding):
                    module.padding_mode = "circular"
        embed_dim = config.channels[0] * 4  # diffusers' time-embedding width
        self.condition = ConditionEmbedding(n_conditions, embed_dim, config.cond_features) if n_conditions else None

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                keep: torch.Tensor | None = None) -> torch.Tensor:
        """``cond`` [N, P] standardised; ``keep`` [N] in {0, 1} drops a sample's condition when 0."""
        labels = None
        if self.condition is not None:
            labels = self.condition(cond)
            if keep is not None:
                labels = labels * keep[:, None].to(labels.dtype)
        return self.unet(x, t, class_labels=labels).sample


def diffusion_loss(kind: str, prediction: torch.Tensor, target: torch.Tensor,
                   weight: torch.Tensor | None = None) -> torch.Tensor:
    """MSE or Huber (delta = 1) between the network output and its target, optionally weighted per sample
    (``weight`` [N]; the mean over samples of weight x per-sample mean loss)."""
    fn = F.huber_loss if kind == "huber" else F.mse_loss
    per_pixel = fn(prediction.float(), target.float(), reduction="none")
    if weight is None:
        return per_pixel.mean()
    return (per_pixel.flatten(1).mean(1) * weight.float()).mean()


def min_snr_weight(snr: torch.Tensor, gamma: float, prediction: str) -> torch.Tensor:
    """Min-SNR-gamma weights (Hang et al. 2023, arXiv:2303.09556) for the eps or v loss at signal-to-noise
    ``snr`` = abar / (1 - abar): the x_0 loss weighted by min(SNR, gamma), i.e. min(SNR, gamma) / SNR for eps
    and min(SNR, gamma) / (SNR + 1) for v (the eps loss is SNR x, the v loss (SNR + 1) x the x_0 loss)."""
    clipped = snr.clamp(max=gamma)
    return clipped / snr if prediction == "epsilon" else clipped / (snr + 1)


@torch.inference_mode()
def reverse_process(
    denoiser: Denoiser,
    config: DiffusionConfig,
    shape: tuple[int, ...],
    sampler: str = "dpm",
    steps: int = 20,
    cond: torch.Tensor | None = None,
    guidance: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Draw ``shape[0]`` samples (in the model's normalised space) with a diffusers scheduler.

    ``cond`` is the standardised condition per sample ``[N, P]``; ``guidance`` w combines the
    conditional and unconditional predictions as out_u + w (out_c - out_u) (w = 1: conditional only).
    The initial noise and any sampler noise come from ``generator`` (CPU), so a seed fixes the result.
    """
    scheduler = make_scheduler(config, sampler)
    if not 1 <= steps <= config.timesteps:
        raise ConfigError(f"steps must be in 1..{config.timesteps}, got {steps}")
    scheduler.set_timesteps(steps)
    x = torch.randn(shape, generator=generator).to(device) * scheduler.init_noise_sigma
    guided = cond is not None and guidance != 1.0
    if cond is not None:
        cond = cond.to(device)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        t_batch = torch.full((shape[0],), int(t), device=device, dtype=torch.long)
        if guided:
            keep = torch.cat([torch.ones(shape[0]), torch.zeros(shape[0])]).to(device)
            both = denoiser(model_in.repeat(2, 1, 1, 1), t_batch.repeat(2), cond.repeat(2, 1), keep)
            conditional, unconditional = both.chunk(2)
            out = unconditional + guidance * (conditional - unconditional)
        else:
            out = denoiser(model_in, t_batch, cond)
        x = scheduler.step(out, t, x, generator=generator).prev_sample
    return x


class DiffusionModule(L.LightningModule):
    """Lightning training of a conditional DDPM; the checkpoint carries everything needed to sample in
    physical units: network config, image shape, data transform, condition names and normalisation,
    and the training set's metadata.

    Parameters
    ----------
    model : `DiffusionConfig` fields.
    image_shape : ``[C, H, W]`` of the training images.
    conditions : parameter names the model is conditioned on (may be empty).
    cond_mean, cond_std : standardisation of each condition (its own units).
    cond_jitter : std of the Gaussian jitter added to each condition during training (its own units).
    cond_dropout : probability of dropping a sample's condition (classifier-free guidance).
    lr, weight_decay, warmup_steps : AdamW settings and linear learning-rate warm-up (steps).
    ema_decay : decay of the exponential moving average of the weights used for sampling (with warm-up,
        `ema_warmup_avg_fn`).
    transform : `Transform.to_dict()` of the fitted data transform (physical -> network space).
    data_meta : `FieldMeta.to_attrs()` of the training set.
    data_range : per-channel ``[min, max]`` of the training images in network space; ``sample(clamp=True)``
        clamps samples to it, widened by ``RANGE_MARGIN`` of its width on each side, before the transform is
        inverted, and counts the clamped pixels in ``clamped_pixels``. Off by default: nothing adjusts samples
        unless asked.
    """

    def __init__(
        self,
        model: dict,
        image_shape: list[int],
        conditions: list[str] | tuple = (),
        cond_mean: list[float] | tuple = (),
        cond_std: list[float] | tuple = (),
        cond_jitter: list[float] | tuple = (),
        cond_dropout: float = 0.1,
        lr: float = 2e-5,
        weight_decay: float = 0.0,
        warmup_steps: int = 500,
        ema_decay: float = 0.999,
        transform: dict | None = None,
        data_meta: dict | None = None,
        data_range: list[list[float]] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = DiffusionConfig.model_validate(model)
        channels, height, width = image_shape
        if height != width:
            raise DataError(f"diffusion models need square images, got {height} x {width}")
        self.conditions = list(conditions)
        self.denoiser = Denoiser(self.config, channels, height, len(self.conditions))
        self.ema = AveragedModel(self.denoiser, multi_avg_fn=ema_warmup_avg_fn(ema_decay), use_buffers=True)
        self.ema.requires_grad_(False)
        self.schedule = NoiseSchedule(make_scheduler(self.config).betas)
        for name, values in (("cond_mean", cond_mean), ("cond_std", cond_std), ("cond_jitter", cond_jitter)):
            if len(values) != len(self.conditions):
                raise ConfigError(f"{name} has {len(values)} values for {len(self.conditions)} conditions")
            self.register_buffer(name, torch.tensor(list(values), dtype=torch.float32))
        self.transform = Transform.from_dict(transform) if transform else None
        self.clamped_pixels = 0  # pixels the last `sample` call clamped (0 unless clamp=True)

    def standardise(self, cond: torch.Tensor) -> torch.Tensor:
        """Conditions in their own units ``[N, P]`` -> standardised network inputs."""
        return (cond.to(self.cond_mean.device) - self.cond_mean) / self.cond_std

    def _loss(self, batch: dict, generator: torch.Generator | None = None, train: bool = True) -> torch.Tensor:
        x0 = batch["image"]
        n = x0.shape[0]

        # Training draws from the global RNG on the data's device, validation from a fixed CPU generator; both
        # draw for the whole global batch and keep this rank's rows, so DDP matches one process (draw_rows).
        def draw(fn, *shape):
            return draw_rows(fn, n, shape, generator, x0.device)

        t = draw(partial(torch.randint, 0, self.config.timesteps))
        eps = draw(torch.randn, *x0.shape[1:]).to(x0.dtype)
        cond = keep = None
        if self.conditions:
            cond = batch["params"]
            if train:
                cond = cond + self.cond_jitter * draw(torch.randn, cond.shape[1])
                keep = (draw(torch.rand) >= self.hparams.cond_dropout).float()
            cond = self.standardise(cond)
        out = self.denoiser(self.schedule.q_sample(x0, t, eps), t, cond, keep)
        target = eps if self.config.prediction == "epsilon" else self.schedule.velocity(x0, eps, t)
        weight = None
        if self.config.snr_gamma is not None:
            abar = self.schedule.alphas_cumprod.to(x0.device)[t]
            weight = min_snr_weight(abar / (1 - abar), self.config.snr_gamma, self.config.prediction)
        return diffusion_loss(self.config.loss, out, target, weight)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # The same t and noise for each validation batch at every evaluation: comparable across epochs.
        generator = torch.Generator().manual_seed(10_000 + batch_idx)
        loss = self._loss(batch, generator, train=False)
        self.log("val/loss", loss, prog_bar=True, sync_dist=True, batch_size=batch["image"].shape[0])

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.ema.update_parameters(self.denoiser)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[KIND_KEY] = "diffusion"

    def exported_state(self) -> dict[str, torch.Tensor]:
        """The state a model folder keeps (`astrogen.tasks.export_model`): the EMA weights as the denoiser's,
        and the condition buffers; the raw weights and the EMA copy are left out (half the size)."""
        state = {k: v for k, v in self.state_dict().items() if not k.startswith(("ema.", "denoiser."))}
        state.update({f"denoiser.{k}": v for k, v in self.ema.module.state_dict().items()})
        return state

    def load_exported_state(self, state: dict[str, torch.Tensor]) -> None:
        """Inverse of `exported_state`: the denoiser and its EMA both get the stored (EMA) weights."""
        self.load_state_dict(state, strict=False)
        own = {k for k in self.state_dict() if not k.startswith("ema.")}
        if own != set(state):
            missing, unexpected = sorted(own - set(state)), sorted(set(state) - own)
            raise RuntimeError(f"missing keys {missing[:3]}, unexpected keys {unexpected[:3]}")
        self.ema.module.load_state_dict(self.denoiser.state_dict())

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.denoiser.parameters(), lr=self.hparams.lr,
                                      weight_decay=self.hparams.weight_decay)
        warmup = max(1, self.hparams.warmup_steps)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    kind, takes_inputs = "diffusion", False
    sampling_options: ClassVar[dict] = {"sampler": "dpm", "steps": 20, "guidance": 1.0, "clamp": False, "use_ema": True}

    def sample(self, n: int, generator: torch.Generator | None = None, *, conditions: torch.Tensor | None = None,
               inputs: torch.Tensor | None = None, **options) -> torch.Tensor:
        """``n`` samples in physical units (`astrogen.tasks.Generative`); ``conditions`` ``[n, P]`` in their own
        units.

        Options: ``sampler`` (ddpm, ddim or dpm), ``steps``, ``guidance`` (classifier-free scale w: the
        unconditional plus w times the conditional-minus-unconditional prediction; 1 = conditional only),
        ``use_ema`` (the averaged weights, as trained for sampling) and ``clamp``: limit samples to the training
        range widened by ``RANGE_MARGIN`` (in network space) and set ``clamped_pixels`` to the number of pixels it
        changed; callers must record it (`sample_to_file` stores the fraction in the output's provenance and the
        scorecard's out-of-range row counts it).
        """
        o = check_sample_request(self, n, conditions, inputs, options)
        if o["guidance"] != 1.0 and not self.conditions:
            raise ConfigError("guidance needs a conditioned model; this one is conditioned on nothing")
        network = self.ema.module if o["use_ema"] else self.denoiser
        x = reverse_process(network.eval(), self.config, (n, *self.hparams.image_shape), o["sampler"], o["steps"],
                            None if conditions is None else self.standardise(conditions.float()), o["guidance"],
                            generator, self.device)
        self.clamped_pixels = 0
        if o["clamp"]:
            if self.hparams.data_range is None:
                raise ConfigError("clamp: this checkpoint stores no training range")
            low, high = (torch.tensor(v, device=x.device, dtype=x.dtype)[:, None, None]
                         for v in self.hparams.data_range)
            margin = RANGE_MARGIN * (high - low)
            clamped = x.clamp(low - margin, high + margin)
            self.clamped_pixels = int((clamped != x).sum())
            x = clamped
        return x if self.transform is None else self.transform.inverse(x)
