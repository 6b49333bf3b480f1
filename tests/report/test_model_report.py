"""`evaluate_model` / ``astrogen evaluate-model`` on tiny trained checkpoints, and the redshift judge."""

import json

import numpy as np
import pytest

from astrogen.cli import main
from astrogen.data import FieldSet
from astrogen.report.model_report import evaluate_model
from astrogen.stats.inference import segmentation_scores
from astrogen.stats.redshift import photoz_metrics
from astrogen.tasks import load_model
from astrogen.train import train

TRAINER = {"max_steps": 2, "val_every_steps": 2, "accelerator": "cpu", "devices": 1}


@pytest.fixture
def trained(tiny_data, tiny_model):
    """The session's small gamma-ray set and its tiny regressor, segmentation and denoiser checkpoints."""
    return tiny_data, {kind: tiny_model(kind) for kind in ("regressor", "segmentation", "denoiser")}


def test_each_task_writes_a_report_with_its_metrics(trained, tmp_path):
    data, ckpts = trained
    reg = evaluate_model(ckpts["regressor"], data, tmp_path / "reg")
    assert {"rel_error_A_dm", "mae_A_dm", "rel_error_n_ps_disk"} <= set(reg.metrics)
    assert reg.report.read_text().count("data:image/png") == 1
    assert json.loads(reg.metrics_json.read_text())["metrics"] == reg.metrics

    seg = evaluate_model(ckpts["segmentation"], data, tmp_path / "seg", n_max=10, cut=0.3, threshold=2.0)
    with FieldSet(data) as fs:
        batch = fs[:10]
    expected = segmentation_scores(load_model(ckpts["segmentation"]).predict(batch.images), batch.masks, 0.3, 2.0)
    assert seg.metrics == pytest.approx(expected.summary(), nan_ok=True)

    dae = evaluate_model(ckpts["denoiser"], data, tmp_path / "dae", seed=3)
    assert dae.metrics["mse_noisy"] > 0 and "mse_denoised" in dae.metrics


def test_cli_prints_the_table_and_rejects_bad_checkpoints(trained, tmp_path, capsys):
    data, ckpts = trained
    main(["evaluate-model", str(ckpts["regressor"]), str(data), "--out", str(tmp_path / "r")])  # returns: status 0
    out = capsys.readouterr().out
    assert "mae_A_dm" in out and (tmp_path / "r" / "report.html").is_file()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate-model", str(bad), str(data)])
    assert exit_info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.slow
def test_redshift_judge_scores_generated_conditions(make_fieldset, tmp_path):
    from astrogen.report.evaluate import evaluate

    path, _, params, _ = make_fieldset(n=12, shape=(2, 8, 8))
    ckpt = train({"kind": "regressor", "data": {"path": str(path), "batch_size": 4, "transform": [{"name": "MinMax"}],
                                                "targets": ["redshift"]}, "model": {"channels": [4], "hidden": [4]},
                  "trainer": {**TRAINER, "out": str(tmp_path / "z")}}, progress=False).checkpoint
    result = evaluate(path, path, tmp_path / "eval", stats=["mean"], judge=ckpt)
    with FieldSet(path) as fs:
        z_pred = load_model(ckpt).predict(fs[:].images)[:, 0]
    assert result.judge == pytest.approx(photoz_metrics(z_pred, params["redshift"]))
    assert "Redshift judge" in result.report.read_text()
    from astrogen.errors import ConfigError

    other = train({"kind": "regressor", "data": {"path": str(path), "batch_size": 4, "transform": [{"name": "MinMax"}],
                                                 "targets": ["amplitude"]}, "model": {"channels": [4], "hidden": [4]},
                   "trainer": {**TRAINER, "out": str(tmp_path / "a")}}, progress=False).checkpoint
    with pytest.raises(ConfigError, match="redshift regressor"):
        evaluate(path, path, tmp_path / "eval2", stats=["mean"], judge=other)
    assert np.isfinite(z_pred).all()
