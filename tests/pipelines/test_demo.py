import json

from astrogen.data import FieldSet
from astrogen.pipelines.demo import DEMO_MATTER, run_demo


def test_demo_runs_every_stage_and_writes_the_report(tmp_path):
    result = run_demo(tmp_path / "demo", minutes=0.05, n_train=64, n_test=32, n_generate=16, steps=4)
    out = tmp_path / "demo"
    with FieldSet(out / "matter_train.h5") as train, FieldSet(out / "generated.h5") as gen:
        assert train.meta.periodic and train.sample_shape == (1, DEMO_MATTER["tile_size"], DEMO_MATTER["tile_size"])
        # Samples come back in the training set's units, unadjusted (no clamp unless asked for).
        assert gen.shape == (16, *train.sample_shape) and gen.meta.units == train.meta.units
        assert gen.meta.provenance["clamp"] == {"applied": False}
    assert result.report == out / "report.html" and "<img" in result.report.read_text()
    card = json.loads((out / "scorecard.json").read_text())
    assert {row["statistic"] for row in card["rows"]} >= {"power", "pixel_pdf", "mean"}
    assert result.steps > 0 and set(result.seconds) == {"simulate", "train", "sample", "evaluate"}
