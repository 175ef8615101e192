"""`cosnet-index simulate`: simulated tomograms and subtomogram datasets."""

from __future__ import annotations

import click

from cosnet_index.cli._options import overwrite_option, seed_option

_CLASSES_HELP = (
    "Comma-separated class names and presets: real, train-real, heldout-real, heldout, "
    "proc:A-B (procedural ids), e.g. 'heldout-real,proc:100000-100002'."
)


def _parse_snr(value: str) -> float:
    try:
        snr = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (use inf for no noise)") from None
    if not snr > 0:
        raise click.BadParameter("SNR must be > 0 (use inf for no noise)")
    return snr


_PRESET_HELP = (
    "Imaging preset: paper (the fast Fourier-space path), realistic (tilt-series path, the "
    "training distribution) or shifted (tilt-series path, the hard-benchmark distribution); "
    "see docs/simulation.md."
)


def _preset_option(function):
    return click.option(
        "--preset",
        type=click.Choice(["paper", "realistic", "shifted", "broad"]),
        default="paper",
        show_default=True,
        help=_PRESET_HELP,
    )(function)


def _config(voxel_size: float, box: int):
    from cosnet_index.simulate import SimulationConfig

    return SimulationConfig(box=box, voxel_size_nm=voxel_size)


@click.group("simulate")
def simulate() -> None:
    """Simulate cryo-ET data: tomograms to index, and subtomogram datasets to train or test on.

    The physics (CTF, missing wedge, noise at an SNR, masks) is described in docs/simulation.md.

    Examples:

    \b
        cosnet-index simulate tomograms demo_tomos --n-tomograms 3 --classes heldout-real
        cosnet-index simulate subtomograms data --classes real --n-per-class 50 --snr 0.1
    """


@simulate.command("tomograms")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--n-tomograms", type=int, default=3, show_default=True, help="Tomograms to write.")
@click.option(
    "--shape",
    type=(int, int, int),
    default=(128, 256, 256),
    show_default=True,
    help="Tomogram size z y x in voxels.",
)
@click.option(
    "--classes", default="heldout-real,proc:100000-100002", show_default=True, help=_CLASSES_HELP
)
@click.option("--n-particles", type=int, default=200, show_default=True, help="Per tomogram.")
@click.option("--snr", default="0.5", show_default=True, help="SNR of particle boxes (inf = none).")
@seed_option("Simulation seed.")
@click.option("--voxel-size", type=float, default=1.0, show_default=True, help="nm per voxel.")
@click.option("--prefix", default="TS_", show_default=True, help="Tomogram names: PREFIX01, ...")
@click.option("--labels", is_flag=True, help="Also write <name>_labels.mrc (particle masks).")
@_preset_option
def tomograms(
    out_dir: str,
    n_tomograms: int,
    shape: tuple[int, int, int],
    classes: str,
    n_particles: int,
    snr: str,
    seed: int,
    voxel_size: float,
    prefix: str,
    labels: bool,
    preset: str,
) -> None:
    """Write simulated tomograms (MRC), particles.star and truth.parquet to OUT_DIR.

    Molecules of the given classes are placed without overlap at random poses; each tomogram is
    imaged with a CTF, the missing wedge of a +-60 degree tilt series and noise. Coordinates in
    particles.star are x, y, z voxels (rlnTomoName, rlnCoordinateX/Y/Z, rlnClassName). With
    --preset realistic or shifted each tomogram draws its own microscope and tilt series and is
    made by projecting at every tilt (per-tilt CTF, exposure filter, noise) and weighted
    back-projection, with background; truth.parquet records the preset and the drawn imaging.

    Examples:

    \b
        cosnet-index simulate tomograms tomos --n-tomograms 3 --n-particles 200
        cosnet-index simulate tomograms tomos --classes real --snr 0.1 --shape 64 128 128
        cosnet-index simulate tomograms tomos --preset realistic --labels
    """
    from cosnet_index.simulate import resolve_classes, simulate_collection

    truth = simulate_collection(
        out_dir,
        n_tomograms,
        resolve_classes(classes),
        n_particles,
        _parse_snr(snr),
        seed,
        shape=shape,
        config=_config(voxel_size, 32),
        prefix=prefix,
        write_labels=labels,
        progress=True,
        imaging=preset,
    )
    click.echo(
        f"wrote {n_tomograms} tomograms with {len(truth)} particles of "
        f"{truth['class'].nunique()} classes to {out_dir} (particles.star, truth.parquet)"
    )


@simulate.command("subtomograms")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--classes", default="real", show_default=True, help=_CLASSES_HELP)
@click.option("--n-per-class", type=int, default=100, show_default=True, help="Per class and SNR.")
@click.option(
    "--snr", default="inf,1000,0.5,0.1", show_default=True, help="Comma-separated SNR levels."
)
@seed_option("Simulation seed.")
@click.option("--box", type=int, default=32, show_default=True, help="Box side in voxels.")
@click.option("--voxel-size", type=float, default=1.0, show_default=True, help="nm per voxel.")
@click.option("--crowding", is_flag=True, help="Put parts of neighbour molecules in the boxes.")
@overwrite_option("Replace a dataset already in OUT_DIR.")
@_preset_option
@click.option(
    "--workers",
    type=int,
    default=0,
    show_default=True,
    help="Simulate chunks in this many processes (same draws; 0 = in this process).",
)
def subtomograms(
    out_dir: str,
    classes: str,
    n_per_class: int,
    snr: str,
    seed: int,
    box: int,
    voxel_size: float,
    crowding: bool,
    overwrite: bool,
    preset: str,
    workers: int,
) -> None:
    """Write a subtomogram dataset to OUT_DIR: volumes.npy, masks.npy, labels.parquet.

    Volumes are float16 (n, box, box, box) with molecules dark, masks bool; both load
    memory-mapped (numpy.load(..., mmap_mode='r') or cosnet_index.simulate.load_dataset).
    With --preset realistic or shifted every subtomogram draws its own imaging (recorded as JSON
    in labels.parquet, column imaging).

    Examples:

    \b
        cosnet-index simulate subtomograms data --classes real --n-per-class 100
        cosnet-index simulate subtomograms test --classes heldout --snr 0.1 --crowding
        cosnet-index simulate subtomograms train --classes train-real --preset realistic --workers 2
    """
    from cosnet_index.simulate import make_dataset, resolve_classes

    snrs = [_parse_snr(v) for v in snr.split(",") if v.strip()]
    names = resolve_classes(classes)
    dataset = make_dataset(
        out_dir,
        names,
        n_per_class,
        snrs,
        seed,
        config=_config(voxel_size, box),
        crowding=crowding,
        progress=True,
        overwrite=overwrite,
        imaging=preset,
        workers=workers,
    )
    click.echo(f"wrote {len(dataset)} subtomograms of {len(names)} classes to {out_dir}")
