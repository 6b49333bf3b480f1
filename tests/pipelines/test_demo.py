import json

import pytest

from astrogen.data import FieldMeta, FieldSet
from astrogen.pipelines.demo import DEMO_MATTER, PRETRAINED, run_demo
from astrogen.pretrained import config

pytestmark = pytest.mark.slow  # trains, samples or builds the site: `make test`, not `make test-fast`


def test_the_shipped_model_was_trained_on_the_demo_simulator_config():
    meta = FieldMeta.from_attrs(config(PRETRAINED)["hyper_parameters"]["data_meta"])
    assert meta.simulator == "matter" and meta.seed == 0
    assert {k: meta.config[k] for k in DEMO_MATTER} == DEMO_MATTER


def test_demo_samples_the_shipped_model_and_writes_the_report(tmp_path):
    result = run_demo(tmp_path / "demo", n_test=32, n_generate=16, steps=4)
    out = tmp_path / "demo"
    with FieldSet(out / "matter_test.h5") as test, FieldSet(out / "generated.h5") as gen:
        assert test.meta.periodic and test.sample_shape == (1, DEMO_MATTER["tile_size"], DEMO_MATTER["tile_size"])
        assert test.meta.seed == 1  # boxes the shipped model never saw (trained on seed 0)
        # Samples come back in the training set's units, unadjusted (no clamp unless asked for).
        assert gen.shape == (16, *test.sample_shape) and gen.meta.units == test.meta.units
        assert gen.meta.provenance["clamp"] == {"applied": False}
        assert gen.meta.provenance["generated_from"] == f"pretrained:{PRETRAINED}"
    assert not (out / "matter_train.h5").exists() and result.model == f"pretrained:{PRETRAINED}"
    page = result.report.read_text()
    assert "<img" in page and f"pretrained:{PRETRAINED}" in page and "MODEL.md" in page
    card = json.loads((out / "scorecard.json").read_text())
    assert {row["statistic"] for row in card["rows"]} >= {"power", "pixel_pdf", "mean", "out_of_range"}
    assert set(result.seconds) == {"simulate", "sample", "evaluate"}


def test_demo_trains_from_scratch_when_asked(tmp_path):
    result = run_demo(tmp_path / "demo", train_model=True, minutes=0.05, n_train=64, n_test=32, n_generate=16,
                      steps=4)
    out = tmp_path / "demo"
    with FieldSet(out / "matter_train.h5") as train, FieldSet(out / "generated.h5") as gen:
        assert train.meta.seed == 0 and gen.shape == (16, *train.sample_shape)
    assert result.steps > 0 and set(result.seconds) == {"simulate", "train", "sample", "evaluate"}
    assert result.report.is_file()
