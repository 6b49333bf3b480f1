"""The optimiser settings every model family shares: one class, one set of defaults.

A family that needs more (the weight average, the warm-up, the GANs' second learning rate and loss weights, the
VAE's KL weight) adds fields in a subclass; a shared field is defined here only.
"""

from __future__ import annotations

from pydantic import Field

from astrogen.config import StrictModel


class OptimConfig(StrictModel):
    """Adam (AdamW for diffusion) learning rate, weight decay and gradient clipping: the ``optim`` section of every
    experiment (the regressor, segmentation, denoiser and posterior use it as is)."""

    lr: float = Field(1e-4, gt=0, description="learning rate")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float | None = Field(1.0, gt=0, description="largest norm of the gradients (None: no clipping)")


class AveragedOptimConfig(OptimConfig):
    """`OptimConfig` plus the exponential moving average of the weights that samples are drawn from (diffusion,
    GANs; with warm-up, `astrogen.models.blocks.ema_warmup_avg_fn`)."""

    ema_decay: float = Field(0.999, ge=0, lt=1, description="decay per update of the weight average (every step; "
                             "every generator step for GANs; 0: the raw weights)")


__all__ = ["AveragedOptimConfig", "OptimConfig"]
