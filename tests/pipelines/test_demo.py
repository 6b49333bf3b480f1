from astrogen.data import FieldSet
from astrogen.pipelines.demo import run_demo


def test_demo_writes_and_summarises_a_blob_set(tmp_path):
    result = run_demo(tmp_path / "demo", n=64, seed=0)
    assert result.path == tmp_path / "demo" / "blobs.h5"
    with FieldSet(result.path) as fs:
        assert fs.shape == (64, 1, 128, 128) and fs.meta.simulator == "blobs"
    assert result.blobs_per_image == 50
    # Blended blobs merge into one peak, so fewer peaks than blobs are found, but most are separate.
    assert 30 < result.peaks_per_image < 50
    assert 0 < result.stats.mean[0] < result.stats.max[0]
