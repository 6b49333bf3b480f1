"""The ``astrogen`` command line: thin wrappers over library functions.

User errors (`AstrogenError`, unreadable files) print one line on stderr and exit with status 2;
``astrogen --debug ...`` shows the full traceback instead.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from astrogen import __version__
from astrogen.errors import AstrogenError

app = typer.Typer(
    name="astrogen",
    help="Simulate, learn, generate and validate astrophysical images and fields.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
_state = {"debug": False}

# Help texts are Rich markup: a literal "[" is written "\\[", or Typer drops "[preset or 1000]" as an unknown tag.
Compression = Annotated[str, typer.Option(help="HDF5 compression: none, gzip or lzf.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")]


def _compression(name: str) -> str | None:
    return None if name.lower() == "none" else name.lower()


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False):
    _state["debug"] = debug


@app.command()
def version() -> None:
    """Print the astrogen version."""
    console.print(__version__)


@app.command()
def simulate(
    name: Annotated[str, typer.Argument(help="Simulator name, a preset YAML file, or 'list'.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output FieldSet file (.h5).")] = None,
    n: Annotated[int | None, typer.Option("--n", "-n", min=1, help="Number of samples \\[preset or 1000].")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Random seed \\[preset or 0]; same seed, same file.")] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value (repeatable).")] = None,
    compression: Compression = "none",
    overwrite: Overwrite = False,
    shard: Annotated[str | None, typer.Option(
        help="Write only shard I of N (e.g. 3/10) of the set; `astrogen merge` joins the shards.")] = None,
) -> None:
    """Simulate a training set into a FieldSet. NAME is a simulator or a preset (configs/sims/*.yaml)."""
    from astrogen.config import SimulationPreset, load_preset, parse_overrides
    from astrogen.sims import Shard, available, get_simulator, simulate_to_file

    if name == "list":
        for sim in available():
            console.print(sim)
        return
    if out is None:
        raise AstrogenError("simulate needs --out FILE")
    is_preset = name.lower().endswith((".yaml", ".yml"))
    preset = load_preset(name) if is_preset else SimulationPreset(simulator=name)
    simulator = get_simulator(preset.simulator, {**preset.config, **parse_overrides(set_ or [])})
    n = n or preset.n or 1000
    part = None if shard is None else Shard.of(*_parse_shard(shard), n=n, block_size=simulator.block_size)
    path = simulate_to_file(
        preset.simulator, n, out, seed=seed if seed is not None else preset.seed or 0, config=simulator.config,
        compression=_compression(compression), overwrite=overwrite, progress=True,
        shard=None if part is None else (part.index, part.count),
    )
    if part is None:
        console.print(f"wrote {n} {preset.simulator} samples to {path}")
    else:
        console.print(f"wrote shard {part.index}/{part.count} of {preset.simulator} (samples {part.start} to "
                      f"{part.stop - 1} of {n}) to {path}")


def _parse_shard(text: str) -> tuple[int, int]:
    """``"3/10"`` -> ``(3, 10)``."""
    index, sep, count = text.partition("/")
    if not (sep and index.strip().isdigit() and count.strip().isdigit()):
        raise AstrogenError(f"--shard expects I/N with whole numbers 0 <= I < N (e.g. 3/10), got {text!r}")
    return int(index), int(count)


@app.command()
def merge(
    shards: Annotated[list[Path], typer.Argument(help="FieldSet files to join, e.g. shards/part-*.h5.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Merged FieldSet file (.h5).")],
    virtual: Annotated[bool, typer.Option(
        "--virtual", help="Write HDF5 virtual datasets over the shards (keep them beside it) instead of a copy.")
    ] = False,
    compression: Compression = "none",
    overwrite: Overwrite = False,
) -> None:
    """Join FieldSet files, e.g. the shards of `simulate --shard I/N`, into one set (sorted by shard index)."""
    from astrogen.data import FieldSet, merge_fieldsets

    path = merge_fieldsets(shards, out, virtual=virtual, overwrite=overwrite, progress=True,
                           compression=_compression(compression))
    with FieldSet(path) as fs:
        console.print(f"wrote {len(fs)} samples from {len(shards)} files to {path}"
                      + (" (virtual: reads from the shard files)" if virtual else ""))


@app.command()
def info(file: Annotated[Path, typer.Argument(help="FieldSet file.")]) -> None:
    """Describe a FieldSet: shape, channels, units, parameters and provenance."""
    from astrogen.data import FieldSet

    with FieldSet(file) as fs:
        console.print(fieldset_table(fs))


def fieldset_table(fs) -> Table:
    """A rich table describing a FieldSet (used by `info` and the demo)."""
    m = fs.meta
    table = Table(title=str(fs.path), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("samples", str(len(fs))),
        ("sample shape", " x ".join(map(str, fs.sample_shape))),
        ("channels", ", ".join(m.channels)),
        ("units", m.units),
        ("pixel size", "unknown" if m.pixel_size is None else f"{m.pixel_size:g} {m.pixel_unit}"),
        ("box size", "unknown" if m.box_size is None else " x ".join(f"{b:g}" for b in m.box_size)
         + f" {m.pixel_unit}"),
        ("periodic", str(m.periodic)),
        ("masks", "none" if fs.masks is None else " x ".join(map(str, fs.masks.shape[1:]))),
    ]
    if m.simulator:
        rows += [("simulator", f"{m.simulator} v{m.simulator_version}"), ("seed", str(m.seed)),
                 ("config", ", ".join(f"{k}={v}" for k, v in m.config.items()))]
    rows += [("provenance", ", ".join(f"{k}={v}" for k, v in m.provenance.items() if v is not None))]
    for name, values in fs.params.items():
        unit = fs.param_units.get(name, "")
        rows.append((f"param {name}", f"min {values.min():.4g}  mean {values.mean():.4g}  "
                                      f"max {values.max():.4g} {unit}".rstrip()))
    for key, value in rows:
        table.add_row(key, value)
    return table


def _parse_params(items: list[str] | None) -> dict[str, str] | None:
    """``["redshift=specz_redshift", "ra"]`` -> ``{"redshift": "specz_redshift", "ra": "ra"}`` (None if empty)."""
    if not items:
        return None
    out = {}
    for item in items:
        name, sep, key = (part.strip() for part in item.partition("="))
        if not name or (sep and not key):
            raise AstrogenError(f"--param expects NAME=KEY or KEY, got {item!r}")
        out[name] = key or name
    return out


@app.command("import")
def import_(
    src: Annotated[Path, typer.Argument(help="Source file: .npy, .npz, FITS or HDF5.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output FieldSet file (.h5).")],
    key: Annotated[str | None, typer.Option(help="npz entry, HDF5 dataset or FITS HDU holding the images.")] = None,
    layout: Annotated[str | None, typer.Option(help="Axis names, e.g. NCHW, NHWC, NHW, HW, NCDHW.")] = None,
    channels: Annotated[str | None, typer.Option(help="Comma-separated channel names.")] = None,
    units: Annotated[str | None, typer.Option(help="Unit of the pixel values.")] = None,
    pixel_size: Annotated[float | None, typer.Option(help="Pixel side in --pixel-unit.")] = None,
    pixel_unit: Annotated[str | None, typer.Option(help="Unit of the pixel size: deg, arcmin, Mpc/h, ...")] = None,
    periodic: Annotated[bool, typer.Option("--periodic", help="The fields are periodic boxes.")] = False,
    param: Annotated[list[str] | None, typer.Option(
        "--param", help="Parameter column NAME=KEY, e.g. redshift=specz_redshift (repeatable; default: all)")] = None,
    compression: Compression = "none",
    overwrite: Overwrite = False,
) -> None:
    """Convert your own images (.npy/.npz/FITS/HDF5, e.g. GalaxiesML) into a FieldSet."""
    from astrogen.data import import_file

    with import_file(
        src, out, key=key, layout=layout, channels=channels.split(",") if channels else None, units=units,
        pixel_size=pixel_size, pixel_unit=pixel_unit, periodic=periodic, params=_parse_params(param),
        compression=_compression(compression), overwrite=overwrite, progress=True,
    ) as fs:
        console.print(f"imported {len(fs)} samples of shape {fs.sample_shape} into {fs.path}")


Devices = Annotated[str | None, typer.Option(help="Devices per node: a count, 'auto' or ids like '0,1'.")]
Accelerator = Annotated[str | None, typer.Option(help="cpu, gpu, cuda, mps or auto.")]


def _devices(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _hardware(**options) -> dict[str, object]:
    """Overrides ``trainer.<name>`` for the hardware options given on the command line."""
    return {f"trainer.{name}": value for name, value in options.items() if value is not None}


@app.command("train")
def train_(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML, e.g. configs/train/blobs-ddpm.yaml).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override key=value, dotted (optim.lr=1e-4).")]
    = None,
    resume: Annotated[Path | None, typer.Option(help="Continue from this checkpoint.")] = None,
    devices: Devices = None,
    num_nodes: Annotated[int | None, typer.Option(min=1, help="Machines (e.g. SLURM nodes).")] = None,
    strategy: Annotated[str | None, typer.Option(help="auto, ddp, ddp_spawn or fsdp.")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, 32-true, bf16-mixed, 16-mixed, ...")] = None,
    accelerator: Accelerator = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a finished run in trainer.out.")] = False,
) -> None:
    """Train a model from a YAML config; checkpoints and logs go to trainer.out.

    --devices, --num-nodes, --strategy, --precision and --accelerator override the config's trainer section;
    data.batch_size stays the global batch, split across all processes, so results do not depend on them.
    """
    from lightning.pytorch.utilities import rank_zero_only

    from astrogen.config import parse_overrides
    from astrogen.train import train

    overrides = {**parse_overrides(set_ or []), **_hardware(
        devices=_devices(devices), num_nodes=num_nodes, strategy=strategy, precision=precision,
        accelerator=accelerator)}
    result = train(config, overrides, resume=resume, progress=True, overwrite=overwrite)
    if rank_zero_only.rank == 0:
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items()))
        best = f"; best on validation {result.best}" if result.best else ""
        console.print(f"trained {result.steps} steps ({metrics}); checkpoint {result.checkpoint}{best}")


def _parse_conditions(items: list[str]) -> dict[str, float]:
    from astrogen.config import parse_overrides

    values = parse_overrides(items)
    bad = [k for k, v in values.items() if not isinstance(v, (int, float)) or isinstance(v, bool)]
    if bad:
        raise AstrogenError(f"--cond {bad[0]}: expected a number, got {values[bad[0]]!r}")
    return {k: float(v) for k, v in values.items()}


@app.command("sample")
def sample_(
    ctx: typer.Context,
    checkpoint: Annotated[str, typer.Argument(help="Trained model: a .ckpt, a model folder or pretrained:NAME.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output FieldSet file (.h5).")],
    n: Annotated[int | None, typer.Option("--n", "-n", min=1, help="Samples \\[rows of --cond-from, or 1000].")]
    = None,
    sampler: Annotated[str, typer.Option(help="Diffusion: ddpm, ddim or dpm (DPM-Solver++).")]
    = "dpm",
    steps: Annotated[int, typer.Option(min=1, help="Diffusion: sampling steps.")] = 20,
    cond: Annotated[list[str] | None, typer.Option("--cond", help="Condition name=value (repeatable).")] = None,
    cond_from: Annotated[Path | None, typer.Option(help="FieldSet whose params give per-sample conditions.")]
    = None,
    guidance: Annotated[float, typer.Option(help="Diffusion: classifier-free guidance scale (1 = conditional "
                                                    "only).")] = 1.0,
    inputs_from: Annotated[Path | None, typer.Option(help="pixgan/vaegan: FieldSet of input maps.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch.")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    devices: Annotated[int, typer.Option(min=1, help="Processes per node, e.g. one per GPU; same samples as 1.")]
    = 1,
    num_nodes: Annotated[int, typer.Option(min=1, help="Machines (e.g. SLURM nodes).")] = 1,
    clamp: Annotated[bool, typer.Option("--clamp", help="Diffusion: clamp samples to the training range widened by "
                                                        "25% (recorded in the output; scored as out of range).")]
    = False,
    compression: Compression = "none",
    overwrite: Overwrite = False,
) -> None:
    """Generate samples from a trained model (diffusion, GAN or VAE) into a FieldSet in physical units.

    With --devices N the samples are split across N processes (batch b always draws from the same seed), and
    joined into one FieldSet: the file one process writes.
    """
    from lightning.pytorch.utilities import rank_zero_only

    from astrogen.generate import sample_to_file

    # The diffusion options the user set (the defaults shown are the diffusion models'): another kind refuses them.
    options = {name: value for name, value in (("sampler", sampler), ("steps", steps), ("guidance", guidance),
                                               ("clamp", clamp))
               if ctx.get_parameter_source(name).name != "DEFAULT"}  # Typer vendors its own click
    path = sample_to_file(
        checkpoint, out, n=n, cond=_parse_conditions(cond or []), cond_from=cond_from, seed=seed,
        batch_size=batch_size, device=device, compression=_compression(compression), overwrite=overwrite,
        progress=True, inputs_from=inputs_from, devices=devices, num_nodes=num_nodes, **options,
    )
    if rank_zero_only.rank == 0:
        console.print(f"wrote samples to {path}")


@app.command()
def pretrained() -> None:
    """List the pretrained models shipped with astrogen (use them as pretrained:NAME)."""
    import astrogen.pretrained as shipped

    table = Table(title="pretrained models (astrogen sample pretrained:NAME ...)")
    for column in ("name", "kind", "image shape", "steps", "summary"):
        table.add_column(column)
    for name in shipped.available():
        config = shipped.config(name)
        table.add_row(name, config["kind"], " x ".join(map(str, config["hyper_parameters"].get("image_shape", []))),
                      str(config.get("global_step")), config.get("summary", ""))
    console.print(table)


@app.command()
def export(
    checkpoint: Annotated[str, typer.Argument(help="A .ckpt, a model folder or pretrained:NAME.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output model folder.")],
    format_: Annotated[str, typer.Option(
        "--format", help="astrogen: model.safetensors + config.json, which astrogen loads; diffusers (diffusion "
                         "models): unet/, scheduler/, condition/, model_index.json and pipeline.py, which "
                         "astrogen.interop.AstrogenDiffusionPipeline.from_pretrained loads and samples in physical "
                         "units.")] = "astrogen",
    overwrite: Overwrite = False,
) -> None:
    """Write a model folder: model.safetensors (weights; EMA only for diffusion) and config.json, or a diffusers
    pipeline folder (--format diffusers)."""
    if format_ == "diffusers":
        from astrogen.interop import export_diffusers

        console.print(f"wrote {export_diffusers(checkpoint, out, overwrite=overwrite)}")
        return
    if format_ != "astrogen":
        raise AstrogenError(f"unknown --format {format_!r}; choose astrogen or diffusers")
    from astrogen.tasks import export_model

    console.print(f"wrote {export_model(checkpoint, out, overwrite=overwrite)}")


@app.command("convert-checkpoint")
def convert_checkpoint_(
    old: Annotated[Path, typer.Argument(help="A checkpoint the safe reader refuses.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Converted checkpoint (.ckpt).")],
    trust: Annotated[bool, typer.Option("--trust", help="Confirm you trust OLD's source (its hyper-parameters will "
                                                        "build a model); code in it is still refused.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Rewrite an older checkpoint (paths, NumPy arrays in it) as tensors and plain data, which astrogen loads."""
    from astrogen.tasks import convert_checkpoint

    console.print(f"wrote {convert_checkpoint(old, out, trust=trust, overwrite=overwrite)}")


@app.command("evaluate")
def evaluate_(
    real: Annotated[Path, typer.Argument(help="Real (reference) FieldSet.")],
    generated: Annotated[Path, typer.Argument(help="Generated FieldSet, in the same physical units.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for report.html and scorecard.json.")],
    stats: Annotated[str | None, typer.Option(help="Comma-separated statistics, e.g. power,peaks (default: all).")]
    = None,
    n_max: Annotated[int, typer.Option(min=2, help="Maps read from each set at most (random subset, streamed in "
                                                   "batches of 256).")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the subset draw and the bootstrap.")] = 0,
    condition: Annotated[str | None, typer.Option(help="Parameter whose bins show morphology intervals.")] = None,
    judge: Annotated[Path | None, typer.Option(help="Redshift-regressor checkpoint: the redshift-judge protocol "
                                                    "(its photo-z metrics on real vs generated, per redshift bin).")]
    = None,
    by: Annotated[str | None, typer.Option(help="--judge: parameter whose bins the metrics are given in "
                                                "\\[redshift].")] = None,
    bins: Annotated[str | None, typer.Option(help="--judge: comma-separated bin edges, e.g. 0,0.4,0.8,1.2,2,4 "
                                                  "\\[those for redshift; else 5 quantile bins].")] = None,
) -> None:
    """Compare a generated set with a real one: scorecard table, report.html and scorecard.json."""
    from astrogen.errors import ConfigError
    from astrogen.report import evaluate
    from astrogen.stats.redshift import N_SIGMA

    names = [name.strip() for name in stats.split(",")] if stats else None
    try:
        edges = None if bins is None else [float(edge) for edge in bins.split(",")]
    except ValueError as err:
        raise ConfigError(f"--bins {bins!r}: give comma-separated numbers, e.g. 0,0.4,0.8,1.2,2,4") from err
    result = evaluate(real, generated, out, stats=names, n_max=n_max, seed=seed, condition=condition, progress=True,
                      judge=judge, by=by, bins=edges)
    console.print(result.scorecard.table())
    if result.judge_bins is not None:
        console.print(result.judge_table())
        agree = result.judge_bins["agree"]
        console.print(f"redshift judge: real and generated agree in {result.judge_bins['bins_agreeing']} of "
                      f"{result.judge_bins['bins_judged']} bins (|diff| <= {N_SIGMA:g} combined bootstrap σ); "
                      f"{'AGREE' if agree else 'DIFFER' if agree is False else 'no verdict'}")
    console.print(f"{'PASS' if result.scorecard.passed else 'FAIL'}; report {result.report}")


@app.command("evaluate-model")
def evaluate_model_(
    checkpoint: Annotated[Path, typer.Argument(help="Regressor, segmentation, denoiser or posterior checkpoint "
                                                    "(.ckpt).")],
    data: Annotated[Path, typer.Argument(help="FieldSet to evaluate on (e.g. a held-out test set).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory for report.html and metrics.json.")]
    = Path("model-report"),
    n_max: Annotated[int | None, typer.Option(min=1, help="Use the first N samples \\[all].")] = None,
    cut: Annotated[float, typer.Option(help="Segmentation: probability cut of a predicted point-source pixel.")]
    = 0.02,
    threshold: Annotated[float | None, typer.Option(help="Segmentation: mask counts of a point-source pixel "
                                                          "\\[the model's].")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Denoiser: seed of the noise draw; posterior: of the samples.")]
    = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    samples: Annotated[int, typer.Option(min=2, help="Posterior: samples per image.")] = 1000,
) -> None:
    """Evaluate a trained inference network: print its metrics table (and, for a posterior, its coverage verdicts)
    and write report.html."""
    from astrogen.report.model_report import evaluate_model

    result = evaluate_model(checkpoint, data, out, n_max=n_max, cut=cut, threshold=threshold, seed=seed,
                            device=device, n_samples=samples)
    console.print(result.table())
    for note in result.notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    console.print(f"report {result.report}")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path("astrogen-demo"),
    train: Annotated[bool, typer.Option("--train", help="Train a model from scratch for --minutes instead of "
                                                        "sampling the shipped pretrained:matter-demo.")] = False,
    minutes: Annotated[float, typer.Option(min=0.05, help="--train: training budget, minutes of wall-clock time.")]
    = 8.0,
    n_train: Annotated[int, typer.Option(min=64, help="--train: simulated training slices.")] = 2048,
    n_test: Annotated[int, typer.Option(min=16, help="Held-out slices (independent boxes).")] = 1000,
    n_generate: Annotated[int, typer.Option(min=16, help="Generated slices.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
) -> None:
    """The end-to-end demo: held-out matter slices vs the shipped model's samples (or one trained with --train),
    scorecard and report."""
    from astrogen.pipelines.demo import run_demo

    result = run_demo(out, train_model=train, minutes=minutes, n_train=n_train, n_test=n_test,
                      n_generate=n_generate, seed=seed, progress=True)
    console.print(result.table())
    console.print(f"{'PASS' if result.scorecard.passed else 'FAIL'}: every row of the scorecard "
                  f"{'passes' if result.scorecard.passed else 'must pass'}")


sky_app = typer.Typer(help="The three-step microwave-sky GAN pipeline and full-sky generation.", no_args_is_help=True)
app.add_typer(sky_app, name="sky")


@sky_app.command("train")
def sky_train(
    patches: Annotated[Path, typer.Argument(help="FieldSet of kappa + foreground patches (microwave_sky).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory (one folder per stage).")],
    max_steps: Annotated[int, typer.Option(min=1, help="Optimizer steps per stage.")] = 20_000,
    minutes: Annotated[float | None, typer.Option(min=0.01, help="Wall-clock budget per stage, minutes.")] = None,
    n_enlarge: Annotated[int | None, typer.Option(min=1, help="DCWGAN-GP samples added \\[as many as real].")] = None,
    base: Annotated[int, typer.Option(min=1, help="Channels of the first critic stage (report: 64).")] = 64,
    latent: Annotated[int, typer.Option(min=1, help="Latent size (report: 256).")] = 256,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
) -> None:
    """Train DCWGAN-GP (enlarge the set), PIXGAN (kappa -> foregrounds) and VAEGAN on PATCHES."""
    from astrogen.pipelines.microwave_sky import train_microwave_sky

    models = train_microwave_sky(patches, out, n_enlarge=n_enlarge, max_steps=max_steps, minutes=minutes,
                                 base=base, latent=latent, seed=seed, progress=True)
    console.print(", ".join(f"{step} {sec:.1f} s" for step, sec in models.seconds.items()))
    console.print(f"checkpoints under {models.out_dir}")


@sky_app.command("generate")
def sky_generate(
    models: Annotated[Path, typer.Argument(help="Directory written by 'astrogen sky train'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output FITS file of HEALPix maps.")],
    nside: Annotated[int | None, typer.Option(min=1, help="HEALPix nside \\[the training sky's].")] = None,
    n_rotations: Annotated[int, typer.Option(min=1, help="Sky rotations the patches are cut in.")] = 20,
    patches_per_rotation: Annotated[int, typer.Option(min=1, help="Patches per rotation.")] = 100,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
    overwrite: Overwrite = False,
) -> None:
    """Gaussian kappa full sky -> patches -> PIXGAN -> VAEGAN -> HEALPix maps of every channel."""
    from astrogen.pipelines.microwave_sky import generate_sky

    result = generate_sky(models, out, nside=nside, n_rotations=n_rotations,
                          patches_per_rotation=patches_per_rotation, seed=seed, overwrite=overwrite)
    console.print(f"wrote {result.path}: {result.n_patches} patches cover {result.coverage:.1%} of the sky "
                  f"({result.seconds:.1f} s)")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning user errors into one line and exit status 2.

    SIGTERM (sent by SLURM, ``timeout`` and ``kill``) interrupts like Ctrl-C, so that partial output is
    removed either way; both print "interrupted" and exit with status 128 + the signal number.
    """

    received: list[int] = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    handlers = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)
                if signal.getsignal(signum) != signal.SIG_IGN}  # e.g. SIGINT for `cmd &` in a script
    error = ""
    try:
        # Not standalone, so that errors reach us: Typer would box usage errors, and it turns Ctrl-C
        # into a silent exit 130 (here it returns 130).
        code = app(args=argv, prog_name="astrogen", standalone_mode=False) or 0
    except typer.TyperException as err:  # usage: unknown command, missing or invalid argument
        code, error, ctx = 2, err.format_message(), getattr(err, "ctx", None)
        if error and ctx is not None:  # no message: `astrogen` alone, whose help Typer has printed
            error += f" (see '{ctx.command_path} --help')"
    except (AstrogenError, OSError) as err:
        if _state["debug"] and not received:
            raise
        code, error = 2, str(err)
    except (KeyboardInterrupt, typer.Abort):  # not from a signal, e.g. the end of input at a prompt
        code = 130
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    if received:
        code = 128 + received[0]
    if code >= 128:
        Console(stderr=True).print("interrupted; no partial output was kept")
    elif error:  # on one line: HDF5's messages break inside the time of day
        message = escape(" ".join(error.split()))
        Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if code:
        sys.exit(code)

