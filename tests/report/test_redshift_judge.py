"""The redshift-judge protocol of ``astrogen evaluate --judge``: tiny simulated galaxies, a 2-step judge."""

import importlib
import json

import pytest

from astrogen.data import FieldSet, FieldSetWriter
from astrogen.stats.redshift import REDSHIFT_EDGES, binned_photoz_metrics
from astrogen.tasks import load_model
from astrogen.train import train

TRAINER = {"max_steps": 2, "val_every_steps": 2, "accelerator": "cpu", "devices": 1}
GALAXIES = {"size": 16, "fft_size": 32}


def tiny_regressor(data, target, out):
    return train({"kind": "regressor",
                  "data": {"path": str(data), "targets": [target], "batch_size": 8,
                           "transform": [{"name": "SignLog"}, {"name": "MinMax"}]},
                  "model": {"channels": [4], "hidden": [4]}, "trainer": {**TRAINER, "out": str(out)}},
                 progress=False).checkpoint


@pytest.fixture(scope="module")
def galaxies(tmp_path_factory):
    """Training, real (held-out) and 'generated' (an independent draw) galaxy sets, and two tiny regressors."""
    from astrogen.sims import simulate_to_file

    root = tmp_path_factory.mktemp("judge")
    paths = {name: simulate_to_file("galaxies", n, root / f"{name}.h5", seed=seed, config=GALAXIES)
             for name, n, seed in (("train", 32, 1), ("real", 24, 2), ("generated", 24, 3))}
    paths["judge"] = tiny_regressor(paths["train"], "redshift", root / "z")
    paths["mag_judge"] = tiny_regressor(paths["train"], "mag_i", root / "m")
    return {k: str(v) for k, v in paths.items()}


def assert_user_error(cli, match, *args):
    code, out, err = cli(*args)
    assert code == 2, (out, err)
    assert err.startswith("error:") and match in err and len(err.strip().splitlines()) == 1, err


def predictions(paths, which):
    with FieldSet(paths[which]) as fs:
        return load_model(paths["judge"]).predict(fs[:].images)[:, 0], fs.params["redshift"][:]


@pytest.mark.slow
def test_judge_protocol_end_to_end(galaxies, tmp_path, cli, monkeypatch):
    monkeypatch.setattr(importlib.import_module("astrogen.report.evaluate"), "MORPHOLOGY_MAX", 4)  # photutils is slow
    out = tmp_path / "report"
    code, stdout, err = cli("evaluate", galaxies["real"], galaxies["generated"], "--out", str(out), "--judge",
                            galaxies["judge"], "--by", "redshift", "--bins", "0,0.6,1.2,4,5", "--stats",
                            "mean,morphology", "--seed", "3")
    assert code == 0, err
    assert "redshift judge per redshift bin" in stdout and "4–5" in stdout and "agree in" in stdout
    record = json.loads((out / "scorecard.json").read_text())["redshift_judge"]
    assert record["edges"] == [0, 0.6, 1.2, 4, 5] and record["n_bootstrap"] == 1000
    bins = record["bins"]
    assert [row["n_real"] + row["n_generated"] for row in bins[3:]] == [0]  # z <= 4: the last bin is empty
    assert bins[3]["agree"] is None and bins[3]["real"]["bias"] is None
    assert sum(row["n_real"] for row in bins) == 24 and sum(row["n_generated"] for row in bins) == 24
    for which in ("real", "generated"):  # the per-bin values are the judge's metrics on each set's maps
        expected = binned_photoz_metrics(*predictions(galaxies, which), edges=record["edges"], n_bootstrap=2)
        for b, row in enumerate(bins[:3]):
            if row[f"n_{which}"]:
                assert row[which]["sigma_nmad"] == pytest.approx(expected.value["sigma_nmad"][b])
                assert row[which]["bias"] == pytest.approx(expected.value["bias"][b])
    text = (out / "report.html").read_text()
    assert "<h2>Redshift judge" in text and "bias ⟨Δz⟩ real" in text and "see the Morphology section" in text
    # samples, morphology histograms, shapes per bin, photometry per bin, judge trends, judge scatter
    assert text.count("data:image/png") == 6 and "edges [0.0, 0.6, 1.2, 4.0, 5.0]" in text
    # the same seed gives the same bootstrap errors
    code, _, err = cli("evaluate", galaxies["real"], galaxies["generated"], "--out", str(tmp_path / "again"),
                       "--judge", galaxies["judge"], "--bins", "0,0.6,1.2,4,5", "--stats", "mean", "--seed", "3")
    assert code == 0, err
    again = json.loads((tmp_path / "again" / "scorecard.json").read_text())["redshift_judge"]
    assert again["bins"] == bins


@pytest.mark.slow
def test_judge_defaults_to_redshift_bins(galaxies, tmp_path):
    from astrogen.report.evaluate import evaluate

    result = evaluate(galaxies["real"], galaxies["generated"], tmp_path / "r", stats=["mean"], judge=galaxies["judge"])
    assert result.judge_bins["by"] == "redshift" and result.judge_bins["edges"] == list(REDSHIFT_EDGES)
    z_pred, z_true = predictions(galaxies, "generated")
    from astrogen.stats.redshift import photoz_metrics

    assert result.judge == pytest.approx(photoz_metrics(z_pred, z_true))  # the whole generated set, as before
    assert result.judge_table() is not None and "Morphology" not in result.report.read_text()


def test_judge_errors_are_one_line(galaxies, tmp_path, cli):
    real, gen, judge = galaxies["real"], galaxies["generated"], galaxies["judge"]
    base = ("evaluate", real, gen, "--out", str(tmp_path / "r"), "--stats", "mean")
    assert_user_error(cli, "strictly increasing", *base, "--judge", judge, "--bins", "0,1,1")
    assert_user_error(cli, "comma-separated numbers", *base, "--judge", judge, "--bins", "0,a")
    assert_user_error(cli, "give --judge", *base, "--by", "redshift")
    assert_user_error(cli, "not a redshift regressor", *base, "--judge", galaxies["mag_judge"])
    assert_user_error(cli, "no 'mass' parameter", *base, "--judge", judge, "--by", "mass")
    with FieldSet(real) as fs:  # the real set without its redshift column
        data = fs[:]
        meta, names = fs.meta, [n for n in fs.param_names if n != "redshift"]
    no_z = tmp_path / "no_z.h5"
    with FieldSetWriter(no_z, data.images.shape[1:], meta, param_names=names) as writer:
        writer.append(data.images, {n: data.params[n] for n in names})
    assert_user_error(cli, "no 'redshift' parameter", *base[:1], str(no_z), *base[2:], "--judge", judge)
    assert not (tmp_path / "r").exists()
