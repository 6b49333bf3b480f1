"""Training throughput of astrogen's DiffusionModule (Lightning, EMA, conditioning, logging) versus a bare
diffusers loop with the same UNet, batch and optimizer, measured side by side in one run.

Target (issue 6): our overhead at most 5%. Run: ``.venv/bin/python benchmarks/bench_diffusion_train.py
[--size 32 --batch 32 --steps 60 --preset small --device auto]``.
"""

from __future__ import annotations

import argparse
import time

import lightning as L
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from astrogen.models.diffusion import DiffusionModule


class StepTimer(L.Callback):
    """Wall time of training steps after ``skip`` warm-up steps."""

    def __init__(self, skip: int):
        self.skip, self.start, self.steps = skip, None, 0

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.skip:
            _sync(module.device)
            self.start = time.perf_counter()

    def on_train_end(self, trainer, module):
        _sync(module.device)
        self.seconds = time.perf_counter() - self.start
        self.steps = trainer.global_step - self.skip


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def bare_loop(unet, images, cond_dim, steps, skip, device) -> float:
    """Seconds for ``steps - skip`` steps of the plainest correct training loop."""
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    optimizer = torch.optim.AdamW(unet.parameters(), lr=2e-5)
    labels = torch.zeros(images.shape[0], cond_dim, device=device) if cond_dim else None
    for step in range(steps):
        if step == skip:
            _sync(device)
            start = time.perf_counter()
        noise = torch.randn_like(images)
        t = torch.randint(0, 1000, (images.shape[0],), device=device)
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16,
                            enabled=torch.device(device).type == "cuda"):
            loss = F.mse_loss(unet(scheduler.add_noise(images, noise, t), t, class_labels=labels).sample.float(),
                              noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--skip", type=int, default=10, help="warm-up steps not timed")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    torch.manual_seed(0)
    module = DiffusionModule(model={"preset": args.preset}, image_shape=[1, args.size, args.size],
                             conditions=["z"], cond_mean=[0.0], cond_std=[1.0], cond_jitter=[0.01])
    images = torch.randn(args.batch, 1, args.size, args.size)
    batch = {"image": images, "params": torch.rand(args.batch, 1)}
    unet = module.denoiser.unet  # the bare loop trains this same architecture (a copy of it)
    bare_unet = type(unet).from_config(unet.config).to(device)
    embed_dim = unet.time_embedding.linear_2.out_features
    timed = args.steps - args.skip
    ours, bare = [], []
    for _ in range(args.repeats):  # alternate, keep the best of each: the machine is noisy
        timer = StepTimer(args.skip)
        trainer = L.Trainer(max_steps=args.steps, accelerator=device, devices=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            gradient_clip_val=1.0, callbacks=[timer],
                            precision="bf16-mixed" if device == "cuda" else "32-true")
        trainer.fit(module, torch.utils.data.DataLoader([batch] * args.steps, batch_size=None))
        ours.append(timer.seconds / timer.steps)
        bare.append(bare_loop(bare_unet, images.to(device), embed_dim, args.steps, args.skip, device) / timed)
    ours, bare = min(ours), min(bare)
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"device {device}, preset {args.preset} ({params:.1f} M parameters), {args.size}x{args.size}, "
          f"batch {args.batch}, best of {args.repeats} x {timed} timed steps")
    print(f"astrogen DiffusionModule : {ours * 1e3:8.1f} ms/step  {args.batch / ours:9.1f} images/s")
    print(f"bare diffusers loop      : {bare * 1e3:8.1f} ms/step  {args.batch / bare:9.1f} images/s")
    print(f"overhead of DiffusionModule: {100 * (ours / bare - 1):+.1f}% (target <= 5%)")


if __name__ == "__main__":
    main()
