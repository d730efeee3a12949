"""``vqladder.train.recipe``: the experiment directory, its one saved config, its guard."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import yaml

from vqladder.config import derive
from vqladder.errors import VQLadderError
from vqladder.io import own_dir
from vqladder.train.recipe import open_experiment, read_saved_config, saved_config, write_results
from vqladder.train.stage import set_retrain


@dataclass
class Inner:
    size: int = 4
    rate: float = 0.5


@dataclass
class Exp:
    EXPERIMENT: ClassVar[str] = "toy"
    out_dir: str = "runs"
    name: str = "toy"
    model: Inner = field(default_factory=Inner)
    seeds: list = field(default_factory=lambda: [0])

    @property
    def dir(self) -> Path:
        return Path(self.out_dir) / self.name


def test_one_saved_config_and_the_guard(tmp_path):
    cfg = Exp(out_dir=str(tmp_path))
    d = open_experiment(cfg, ignore=("seeds",))
    doc = yaml.safe_load((d / "config.yaml").read_text())
    assert doc["experiment"] == "toy" and doc["model"] == {"size": 4, "rate": 0.5}
    open_experiment(derive(cfg, seeds=[0, 1]), ignore=("seeds",))      # an ignored key may change
    with pytest.raises(VQLadderError, match=r"model\.size differ.*--retrain"):
        open_experiment(derive(cfg, model=Inner(size=8)), ignore=("seeds",))
    assert read_saved_config(d)["seeds"] == [0, 1]                       # the refusal wrote nothing
    with pytest.raises(VQLadderError, match=r"model\.size, seeds differ; see .*: use another name="):
        open_experiment(derive(cfg, model=Inner(size=8)), retrainable=False)
    set_retrain(True)
    try:
        open_experiment(derive(cfg, model=Inner(size=8)))                # --retrain: the stages retrain what changed
    finally:
        set_retrain(False)
    assert read_saved_config(d)["model"]["size"] == 8
    open_experiment(derive(cfg, model=Inner(size=2)), keys=("seeds",))  # only the guarded keys count


def test_an_older_name_is_read_then_replaced_and_a_user_folder_refused(tmp_path):
    cfg = Exp(out_dir=str(tmp_path))
    own_dir(cfg.dir, "experiment")
    (cfg.dir / "plan.yaml").write_text(yaml.safe_dump({"experiment": "toy", "out_dir": str(tmp_path), "name": "toy",
                                                      "model": {"size": 4, "rate": 0.9}, "seeds": [0]}))
    assert saved_config(cfg.dir).name == "plan.yaml" and read_saved_config(cfg.dir)["model"]["rate"] == 0.9
    with pytest.raises(VQLadderError, match=r"model\.rate"):
        open_experiment(cfg)
    open_experiment(cfg, legacy={"model": {"size": 4, "rate": 0.5}}, keys=("seeds",))
    assert saved_config(cfg.dir).name == "config.yaml" and not (cfg.dir / "plan.yaml").exists()
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.md").write_text("mine")
    with pytest.raises(VQLadderError):
        open_experiment(Exp(out_dir=str(tmp_path), name="mine"))
    assert (user / "notes.md").read_text() == "mine" and not (user / "config.yaml").exists()


def test_results_are_plain_json(tmp_path):
    import json

    import numpy as np

    write_results(tmp_path, {"acc": np.float32(0.5), "rows": np.arange(3), 1: "x"}, "# t\n")
    assert json.loads((tmp_path / "results.json").read_text()) == {"acc": 0.5, "rows": [0, 1, 2], "1": "x"}
    assert (tmp_path / "results.md").read_text() == "# t\n"



def test_a_saved_config_is_read_through_todays_schema(tmp_path):
    """An experiment's config.yaml saved before a field existed (the key absent) is no change while the field is
    at its default; a real change is still refused, naming the key."""
    import yaml

    from vqladder.config import to_dict
    from vqladder.text.ladder_recipe import LadderConfig
    from vqladder.train.recipe import open_experiment

    cfg = LadderConfig(name="lad", out_dir=str(tmp_path))
    d = open_experiment(cfg, keys=("levels", "upsampler"))
    saved = yaml.safe_load((d / "config.yaml").read_text())
    assert "rate_warmup" in saved["levels"][0]["model"]
    del saved["levels"][0]["model"]["rate_warmup"]   # as an older version wrote it
    (d / "config.yaml").write_text(yaml.safe_dump(saved))
    assert open_experiment(cfg, keys=("levels", "upsampler")) == d
    cfg.upsampler.d_model *= 2
    with pytest.raises(VQLadderError, match="upsampler.d_model differ"):
        open_experiment(cfg, keys=("levels", "upsampler"))
    assert to_dict(cfg)["upsampler"]["d_model"] == cfg.upsampler.d_model
