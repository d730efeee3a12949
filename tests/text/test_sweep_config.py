"""``vqladder.text.sweep_config``: the grid expanded into validated cells, budgets, local twins."""

import pytest
from helpers import sweep_cfg

from vqladder.config import build, to_dict
from vqladder.errors import VQLadderError
from vqladder.text.sweep import (
    expand_grid,
    parse_budget,
    run_sweep,
)


def test_grid_expansion(tmp_path):
    cfg = sweep_cfg(tmp_path, codebook_size=[256, 1024], kind=["fsq", "vq"], seed=[0, 1])
    cells = expand_grid(cfg)
    assert len(cells) == 2 * 2 * 2 * 2
    names = [n for n, _ in cells]
    assert len(set(names)) == len(names) and "m016-k1024-vq-s1" in names
    c = dict(cells)["m008-k256-fsq-s1"]
    assert (c.model.out_len, c.model.quantizer.codebook_size, c.model.seed, c.train.seed, c.train.steps) == \
        (8, 256, 1, 1, 20)
    assert c.run_dir == tmp_path / "sw" / "cells" / "m008-k256-fsq-s1"


def test_grid_with_both_decoders_has_one_local_twin_per_rate_and_seed(tmp_path):

    cfg = sweep_cfg(tmp_path, decoder=["parallel", "autoregressive"], seed=[0, 1])
    d = to_dict(cfg)
    d["base"]["model"]["downsample"] = "pool"
    d["references"]["local_ae"] = True
    names = [n for n, _ in expand_grid(build(type(cfg), d))]
    assert len(names) == len(set(names)) == 2 * 2 * 2 + 2 * 2  # 8 cells, one twin per (out_len, seed)
    assert "m016-k256-fsq-ar-s1" in names and "m016-k256-fsq-s1-local" in names
    assert not any(n.endswith("-ar-s0-local") or n.endswith("-ar-s1-local") for n in names)


def test_grid_rate_cap_keeps_cells_up_to_max_bits(tmp_path):
    # in_len 32; FSQ 256 -> 240 codes (7.9 bits): M=16 x depth 4 = 15.8 bits/token is above a cap of 8,
    # M=16 x depth 2 and M=8 x depth 4 (7.9) are not
    cfg = sweep_cfg(tmp_path, depth=[1, 2, 4], max_bits_per_token=8.0)
    names = sorted(n for n, _ in expand_grid(cfg))
    assert names == ["m008-k256-fsq-r2-s0", "m008-k256-fsq-r4-s0", "m008-k256-fsq-s0", "m016-k256-fsq-r2-s0",
                     "m016-k256-fsq-s0"]
    with pytest.raises(VQLadderError, match="max_bits_per_token"):
        expand_grid(sweep_cfg(tmp_path, max_bits_per_token=0.5))


def test_budget():
    assert parse_budget("600") == (600, None)
    assert parse_budget("10m") == (None, 600.0)
    assert parse_budget("90s") == (None, 90.0)
    with pytest.raises(VQLadderError, match="budget"):
        parse_budget("soon")


def test_empty_grid_and_impossible_cell_fail_first(tmp_path):
    with pytest.raises(VQLadderError, match="grid.out_len has no values"):
        expand_grid(sweep_cfg(tmp_path, out_len=[]))
    with pytest.raises(VQLadderError, match=r"sweep cell m005-k256-fsq-s0: .*not divisible"):
        run_sweep(sweep_cfg(tmp_path, out_len=[16, 5]), runner=lambda *a: pytest.fail("trained something"))
    assert not (tmp_path / "sw" / "cells").exists()


def test_every_cell_gets_a_local_autoencoder_twin(tmp_path):
    cfg = sweep_cfg(tmp_path, seed=[0, 1])
    cfg.references.local_ae = True
    cells = dict(expand_grid(cfg))
    assert len(cells) == 2 * 2 * 2
    twin, cell = cells["m008-k256-fsq-s1-local"], cells["m008-k256-fsq-s1"]
    m = twin.model
    assert (m.downsample, m.latent_layers, m.enc_layers, m.dec_layers, m.seg_layers) == ("segment", 0, 0, 0, 3)
    assert (m.out_len, m.quantizer.codebook_size, m.seed, twin.train.seed, twin.train.steps) == \
        (cell.model.out_len, cell.model.quantizer.codebook_size, 1, 1, cell.train.steps)
    assert twin.run_dir == tmp_path / "sw" / "cells" / "m008-k256-fsq-s1-local"
    # a grid whose compressor is itself local has no twin
    cfg.base.model.downsample, cfg.base.model.latent_layers = "segment", 0
    cfg.base.model.enc_layers = cfg.base.model.dec_layers = 0
    assert not any(n.endswith("-local") for n, _ in expand_grid(cfg))
