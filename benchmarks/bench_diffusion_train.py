"""Training throughput of astrogen's DiffusionModule (Lightning, EMA, conditioning, logging) versus a bare
diffusers loop with the same UNet, batch and optimizer, measured side by side in one run; plus our module
with channels-last memory format (model and inputs) and with ``torch.compile`` of its denoiser. Compilation
starts from an empty inductor cache (the cold compile a first run pays); its time, the first step's excess
over a steady step, is reported apart from the steady step time.

Target (issue 6): our overhead at most 5%. The quick default (batch 16, 20 timed steps) takes about 2 minutes
on 2 CPU cores plus the compilation (2-4 minutes there). Run: ``.venv/bin/python benchmarks/bench_diffusion_train.py
[--size 32 --batch 16 --steps 25 --skip 5 --preset small --device auto --variants default channels_last compile]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import lightning as L
import torch
import torch.nn.functional as F
from _timing import headline
from diffusers import DDPMScheduler

from astrogen.models.diffusion import DiffusionModule

VARIANTS = {"default": "astrogen DiffusionModule", "channels_last": "  + channels_last (model, inputs)",
            "compile": "  + torch.compile(denoiser)"}


class StepTimer(L.Callback):
    """Wall time of training steps after ``skip`` warm-up steps, and of the first step alone."""

    def __init__(self, skip: int):
        self.skip, self.start, self.steps, self.first = skip, None, 0, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.first = time.perf_counter()
        if trainer.global_step == self.skip:
            _sync(module.device)
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if batch_idx == 0:
            _sync(module.device)
            self.first = time.perf_counter() - self.first

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


def diffusion_module(preset: str, size: int, variant: str) -> DiffusionModule:
    """Our conditional DDPM (same initial weights for every variant) with ``variant`` applied."""
    torch.manual_seed(0)
    module = DiffusionModule(model={"preset": preset}, image_shape=[1, size, size], conditions=["z"],
                             cond_mean=[0.0], cond_std=[1.0], cond_jitter=[0.01])
    if variant == "channels_last":
        module = module.to(memory_format=torch.channels_last)
    elif variant == "compile":
        module.denoiser = torch.compile(module.denoiser)
    return module


def train_ours(module: DiffusionModule, batch: dict, steps: int, skip: int, device: str) -> StepTimer:
    """Train ``module`` for ``steps`` steps on the same batch under Lightning; the timer holds the times."""
    timer = StepTimer(skip)
    trainer = L.Trainer(max_steps=steps, accelerator=device, devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, gradient_clip_val=1.0,
                        callbacks=[timer], precision="bf16-mixed" if device == "cuda" else "32-true")
    trainer.fit(module, torch.utils.data.DataLoader([batch] * steps, batch_size=None))
    return timer


def verdict(ratio: float) -> str:
    """Words for a step-time ratio to the default (below 1 is faster)."""
    return "helps" if ratio < 0.95 else "hurts" if ratio > 1.05 else "no clear change (within 5%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--skip", type=int, default=5, help="warm-up steps not timed")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="our module's variants to time (default always runs)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # a cold compile, not one served from an earlier run's cache
        run(args)


def run(args: argparse.Namespace) -> None:
    """Time every variant and the bare loop, alternating, and print the table."""
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    variants = ["default", *(v for v in args.variants if v != "default")]
    modules = {v: diffusion_module(args.preset, args.size, v) for v in variants}
    images = torch.randn(args.batch, 1, args.size, args.size)
    batch = {"image": images, "params": torch.rand(args.batch, 1)}
    batches = {v: {**batch, "image": images.contiguous(memory_format=torch.channels_last)} if v == "channels_last"
               else batch for v in variants}
    unet = modules["default"].denoiser.unet  # the bare loop trains this same architecture (a copy of it)
    bare_unet = type(unet).from_config(unet.config).to(device)
    embed_dim = unet.time_embedding.linear_2.out_features
    timed = args.steps - args.skip
    ours, bare, first, unavailable = {v: [] for v in variants}, [], {}, {}
    jobs = [*variants, "bare"]
    for repeat in range(args.repeats):  # alternate, rotating who goes first, keep the best: the machine is noisy
        for variant in jobs[repeat % len(jobs):] + jobs[:repeat % len(jobs)]:
            if variant == "bare":
                bare.append(bare_loop(bare_unet, images.to(device), embed_dim, args.steps, args.skip, device) / timed)
                continue
            if variant in unavailable:
                continue
            try:
                timer = train_ours(modules[variant], batches[variant], args.steps, args.skip, device)
            except RuntimeError as err:  # e.g. torch.compile without a working C++ compiler
                if variant != "compile":
                    raise
                unavailable[variant] = str(err).strip().splitlines()[0][:200]
                continue
            ours[variant].append(timer.seconds / timer.steps)
            first.setdefault(variant, timer.first)  # the very first step: compilation happens there
    best = {v: min(times) for v, times in ours.items() if times}
    # Overhead repeat by repeat (each pair ran back to back): its range is the run-to-run noise of the figure.
    spread = [100 * (ours_step / bare_step - 1) for ours_step, bare_step in zip(ours["default"], bare)]
    bare = min(bare)
    default = best["default"]
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    print(f"device {device}, preset {args.preset} ({params:.1f} M parameters), {args.size}x{args.size}, "
          f"batch {args.batch}, torch threads {torch.get_num_threads()}, best of {args.repeats} x {timed} timed steps")
    for variant in variants:
        if variant in unavailable:
            print(f"{VARIANTS[variant]:34s}: unavailable here ({unavailable[variant]})")
            continue
        step = best[variant]
        extra = f"  (compilation {first[variant] - step:.1f} s, in the first step)" if variant == "compile" else ""
        print(f"{VARIANTS[variant]:34s}: {step * 1e3:8.1f} ms/step  {args.batch / step:9.1f} images/s  "
              f"{step / default:5.2f}x the default step time{extra}")
    print(f"{'bare diffusers loop':34s}: {bare * 1e3:8.1f} ms/step  {args.batch / bare:9.1f} images/s  "
          f"{bare / default:5.2f}x the default step time")
    print(f"overhead of DiffusionModule: {100 * (default / bare - 1):+.1f}% best vs best, {min(spread):+.1f}% to "
          f"{max(spread):+.1f}% repeat by repeat (target <= 5%; a value inside that range is noise, not a difference)")
    for variant in (v for v in variants if v != "default" and v in best):
        print(f"{variant} on {device}: {verdict(best[variant] / default)} (step time ratio "
              f"{best[variant] / default:.2f})")
    headline("DiffusionModule step", default * 1e3, "ms")
    headline("overhead vs bare diffusers", 100 * (default / bare - 1), "%")
    headline("overhead spread over repeats, low", min(spread), "%")
    headline("overhead spread over repeats, high", max(spread), "%")
    for variant in (v for v in variants if v != "default" and v in best):
        headline(f"{variant} step time ratio", best[variant] / default)
    if "compile" in best:
        headline("compile time", first["compile"] - best["compile"], "s")


if __name__ == "__main__":
    main()
