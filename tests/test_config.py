"""``vqladder.config``: YAML and overrides, unknown keys and types, every shipped config loads."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from vqladder.config import build, load_config, parse_overrides
from vqladder.errors import VQLadderError
from vqladder.text.compressor import RunConfig
from vqladder.text.demo import DEMO_PRESET, demo_config

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@dataclass
class Inner:
    a: int = 1
    b: list[int] = field(default_factory=list)


@dataclass
class Outer:
    name: str = "x"
    lr: float = 1e-3
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


def test_defaults_yaml_overrides(tmp_path):
    y = tmp_path / "c.yaml"
    y.write_text("name: y\ninner:\n  a: 5\n")
    cfg = load_config(Outer, y, ["inner.b=[1,2]", "lr=0.5", "flag=true"])
    assert (cfg.name, cfg.lr, cfg.flag, cfg.inner.a, cfg.inner.b) == ("y", 0.5, True, 5, [1, 2])


def test_unknown_key_names_valid_keys():
    with pytest.raises(VQLadderError, match=r"unknown config key 'inner.c'.*valid keys here: a, b"):
        load_config(Outer, None, ["inner.c=3"])


@pytest.mark.parametrize("ov,msg", [("inner.a=abc", "expected an integer"), ("lr=fast", "expected a number"),
                                    ("flag=maybe", "true/false")])
def test_wrong_type(ov, msg):
    with pytest.raises(VQLadderError, match=msg):
        load_config(Outer, None, [ov])


def test_bad_override_syntax():
    with pytest.raises(VQLadderError, match="key.sub=value"):
        parse_overrides(["model.out_len"])


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_loads(path):
    """Each config says which experiment it is for (`experiment:`), and loads as that experiment's config."""
    import yaml

    from vqladder.cli.registry import EXPERIMENTS

    exp = yaml.safe_load(path.read_text()).get("experiment")
    assert exp in EXPERIMENTS, f"{path.name}: experiment: {exp!r}"
    cfg = load_config(EXPERIMENTS[exp].config_class(), path)
    if exp == "sweep":
        from vqladder.text.sweep import expand_grid

        cells = expand_grid(cfg)
        g = cfg.grid
        axes = len(g.out_len) * len(g.codebook_size) * len(g.kind) * len(g.decoder) * len(g.depth) * len(g.rate_weight)
        assert len(cells) >= 2 and len(cells) >= axes * len(g.seed)  # every grid point (some with a local twin)
    elif exp == "ladder":
        cfg.validate()
        assert len(cfg.levels) >= 2
    elif exp == "planning":
        assert len(cfg.seeds) >= 3
    elif exp == "embed":
        assert cfg.database >= 20000
    elif exp == "video":
        cfg.validate()
        assert len(cfg.seeds) >= 3 and cfg.data.kind == "balls" and cfg.data.size == 32
    elif exp == "variable":
        cfg.validate()
        assert len(cfg.targets) >= 3 and set(cfg.methods) == {"fixed", "entropy", "learned"}
    else:
        assert cfg.model.in_len % cfg.model.out_len == 0
    assert path.read_text().startswith("#"), "each config starts with a header saying how to run it"


def test_demo_yaml_matches_preset():
    shipped = load_config(RunConfig, Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    preset = demo_config()
    assert shipped.model == preset.model and shipped.train == preset.train
    assert build(RunConfig, DEMO_PRESET).data == shipped.data


def test_indivisible_lengths_rejected():
    with pytest.raises(VQLadderError, match="not divisible"):
        load_config(RunConfig, None, ["model.out_len=48"])


def test_partial_nested_override_keeps_the_fields_own_defaults():
    """``entropy_lm.d_model=32`` must keep the experiment's 2-head default, not fall back to LMConfig's 3."""
    from vqladder.planning.recipe import PlanConfig
    from vqladder.text.variable import VariableExpConfig

    cfg = load_config(VariableExpConfig, None, ["entropy_lm.d_model=32"])
    assert (cfg.entropy_lm.d_model, cfg.entropy_lm.n_heads) == (32, 2)
    plan = load_config(PlanConfig, None, ["flat.model.n_layers=2"])
    assert (plan.flat.model.n_layers, plan.flat.model.d_model) == (2, 128)
