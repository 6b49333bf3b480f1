from pathlib import Path

import pytest

from astrogen.config import load_preset, load_yaml, parse_overrides
from astrogen.errors import ConfigError, InputFileError
from astrogen.sims import get_simulator
from astrogen.train import load_train_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*/*.yaml"))


def test_overrides_parse_yaml_values():
    assert parse_overrides(["n=10", "fwhm=4.5", "flag=true", "sizes=[1, 2]", "name=abc"]) == {
        "n": 10, "fwhm": 4.5, "flag": True, "sizes": [1, 2], "name": "abc",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_overrides(["x=[1, 2"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_is_valid(path):
    assert path.parent.name == ("sims" if "simulator" in load_yaml(path) else "train")  # each in its folder
    if path.parent.name == "sims":
        preset = load_preset(path)
        simulator = get_simulator(preset.simulator, preset.config)
        assert preset.n and simulator.config.model_dump(mode="json")
    else:
        config = load_train_config(path)
        assert config.data.path and config.model.model_dump()  # any kind: diffusion, wgan, vae...


def test_preset_errors_name_the_file_and_key(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_preset(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("simulator: blobs\nconfig: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: line \d+ invalid YAML"):
        load_preset(bad)
    bad.write_text("simulator: blobs\nnumber: 3\n")
    with pytest.raises(ConfigError, match="unknown key 'number'"):
        load_preset(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_preset(bad)
