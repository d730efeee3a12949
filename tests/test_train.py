import json

import pytest
import torch
from helpers import tiny_run_config
from safetensors.torch import load_file

from vqladder.data import WindowSampler, prepare
from vqladder.errors import CheckpointError, NonFiniteLossError, VQLadderError
from vqladder.eval import evaluate_compressor
from vqladder.models import SequenceCompressor
from vqladder.text.compressor import train_run
from vqladder.train import Trainer, find_checkpoints, latest_valid_checkpoint, load_model
from vqladder.train.trainer import lr_at


@pytest.fixture
def data(tmp_path, tiny_corpus):
    return prepare(str(tiny_corpus), "bytes", tmp_path / "data", block_size=512).dir


@pytest.mark.slow  # 400 steps to a tuned threshold; the CLI end-to-end test trains and evaluates a run fast
def test_tiny_compressor_learns(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=400, out_len=16)
    res = train_run(cfg)
    # the most frequent byte (space) is right ~18% of the time; the codes must carry far more than that
    assert res["acc"] > 0.6, res
    assert res["usage"] > 0.05
    lines = [json.loads(l) for l in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 5 and {"tokens", "time", "train_loss", "train_acc"} <= set(lines[0])
    assert json.loads((cfg.run_dir / "results.json").read_text())["step"] == 400
    assert (cfg.run_dir / "config.yaml").is_file() and (cfg.run_dir / "tokenizer").is_dir()


class Boom(Exception):
    pass


def _trainer(cfg, shards_dir, fail_after=None):
    from vqladder.data import TokenShards

    sh = TokenShards(shards_dir)
    cfg.model.vocab_size = sh.vocab_size
    model = SequenceCompressor(cfg.model)

    def factory(rank, world):
        s = WindowSampler(sh.train, cfg.model.in_len, cfg.train.batch_size, cfg.train.seed, rank, world)
        if fail_after is not None:
            orig, count = s.next_batch, [0]

            def nb():
                count[0] += 1
                if count[0] > fail_after:
                    raise Boom()
                return orig()

            s.next_batch = nb
        return s

    return Trainer(model, cfg.train, cfg.run_dir, factory,
                   lambda m: evaluate_compressor(m, sh.val, max_chunks=16),
                   {"model_config": __import__("dataclasses").asdict(cfg.model)})


@pytest.mark.parametrize("kind", ["fsq", "vq"])
def test_resume_is_bitwise_identical(tmp_path, data, kind):
    a = tiny_run_config(data, tmp_path / "runs", name="a", kind=kind, steps=12, ckpt_every=4)
    _trainer(a, data).fit()
    b = tiny_run_config(data, tmp_path / "runs", name="b", kind=kind, steps=12, ckpt_every=4)
    with pytest.raises(Boom):
        _trainer(b, data, fail_after=10).fit()  # dies during step 11, after the step-8 checkpoint
    assert [p.name for p in find_checkpoints(b.run_dir / "checkpoints")] == ["step_000004", "step_000008"]
    _trainer(b, data).fit(resume=True)
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the metrics log has no duplicated steps after resume
    steps = [json.loads(l)["step"] for l in (b.run_dir / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in l]
    assert steps == sorted(set(steps))


def test_keep_last_and_corrupt_fallback(tmp_path, data, capsys):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=8, ckpt_every=2, keep_last=2)
    _trainer(cfg, data).fit()
    root = cfg.run_dir / "checkpoints"
    assert [p.name for p in find_checkpoints(root)] == ["step_000006", "step_000008"]
    w = root / "step_000008" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: len(w.read_bytes()) // 2])  # truncate the newest
    ckpt, meta = latest_valid_checkpoint(root)
    assert ckpt.name == "step_000006"
    assert "step_000008" in capsys.readouterr().err
    model, meta, ck = load_model(cfg.run_dir)
    assert ck.name == "step_000006"
    with pytest.raises(CheckpointError, match="corrupted or truncated"):
        load_model(root / "step_000008")


def test_wrong_kind_checkpoint(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=2)
    _trainer(cfg, data).fit()
    with pytest.raises(CheckpointError, match="not a 'planner'"):
        load_model(cfg.run_dir, expect_kind="planner")


def _poison_loss(t, at_call: int, factor: float) -> None:
    """Make the trainer's model return loss * factor on its at_call-th loss call."""
    orig, calls = t.model.loss, [0]

    def bad_loss(batch):
        calls[0] += 1
        loss, m = orig(batch)
        return (loss * factor if calls[0] == at_call else loss), m

    t.model.loss = bad_loss


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=10, ckpt_every=3, mfu=False)  # the poison counts loss calls
    t = _trainer(cfg, data)
    _poison_loss(t, 5, float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 4"):
        t.fit()
    assert [p.name for p in find_checkpoints(cfg.run_dir / "checkpoints")] == ["step_000003"]


def test_nan_skip_policy(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=6, nan_policy="skip", mfu=False)
    t = _trainer(cfg, data)
    _poison_loss(t, 2, float("inf"))
    t.fit()
    assert t.step == 6
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_existing_run_needs_resume(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=2)
    _trainer(cfg, data).fit()
    with pytest.raises(VQLadderError, match="--resume"):
        _trainer(cfg, data).fit()


def test_unwritable_run_dir(tmp_path, data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = tiny_run_config(data, blocker, steps=2)  # out_dir is a file: the run dir cannot be created
    with pytest.raises(VQLadderError, match="not writable"):
        _trainer(cfg, data).fit()


def test_lr_schedule():
    from vqladder.train import TrainerConfig

    c = TrainerConfig(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(0, c) == pytest.approx(0.1)
    assert lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(100, c) == pytest.approx(0.1)
    assert lr_at(55, c) == pytest.approx(0.55)


def test_same_config_same_weights():
    from vqladder.models import CompressorConfig
    from vqladder.quantize import QuantizerConfig

    for kind in ("fsq", "vq"):
        cfg = CompressorConfig(vocab_size=50, in_len=16, out_len=4, d_model=32, n_heads=2,
                               quantizer=QuantizerConfig(kind=kind, codebook_size=256))
        a = SequenceCompressor(cfg).state_dict()
        torch.rand(100)  # the global RNG state must not matter
        b = SequenceCompressor(cfg).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a if not k.endswith("_extra_state"))


def test_disk_full_during_checkpoint_keeps_earlier(tmp_path, data, monkeypatch):
    import errno

    import vqladder.checkpoint as ck

    cfg = tiny_run_config(data, tmp_path / "runs", steps=6, ckpt_every=2)
    real, calls = ck.save_file, [0]

    def failing_save(state, path):
        calls[0] += 1
        if calls[0] == 2:
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(state, path)

    monkeypatch.setattr(ck, "save_file", failing_save)
    with pytest.raises(VQLadderError, match="No space left on device.*earlier checkpoints are intact"):
        _trainer(cfg, data).fit()
    root = cfg.run_dir / "checkpoints"
    assert [p.name for p in root.iterdir()] == ["step_000002"]  # no partial step_000004, no temp dir
    ck.verify_checkpoint(root / "step_000002")


def test_nan_batch_does_not_poison_vq_codebook(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", kind="vq", steps=6, nan_policy="skip")
    t = _trainer(cfg, data)
    q = t.model.quantizer
    orig = q.project_in.forward
    calls = [0]

    def nan_in(x):
        calls[0] += 1
        y = orig(x)
        return y * float("nan") if calls[0] == 3 else y

    q.project_in.forward = nan_in
    t.fit()
    assert t.step == 6
    for name in ("embed", "cluster_size", "embed_sum"):
        assert torch.isfinite(getattr(q, name)).all(), name


def test_autoregressive_decoder_teacher_forced_and_free_running(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=150, out_len=16)
    cfg.model.decoder = "autoregressive"
    res = train_run(cfg)
    assert res["acc"] > 0.3
    model, _, _ = load_model(cfg.run_dir)
    from vqladder.data import TokenShards
    from vqladder.data.sampler import gather_windows, val_windows

    # acc_free is greedy free-running decoding of the first 32 evaluated chunks, recomputed here
    val = TokenShards(data).val
    xs = gather_windows(val, val_windows(val, 32, cfg.eval.max_chunks)[:32], 32)
    with torch.no_grad():
        free = model.decode(model.encode(xs)).argmax(-1)
    assert res["acc_free"] == pytest.approx(float((free == xs).float().mean()), abs=1e-6)

    x = torch.from_numpy(TokenShards(data).val[:64].astype("int64")).view(2, 32)
    codes = model.encode(x)
    gen = model.decode(codes).argmax(-1)
    # free-running: each generated token is the argmax given the codes and the previously generated tokens
    z_q = model.quantizer.decode_codes(codes)
    tf = model.post_quant(z_q, gen).argmax(-1)
    assert torch.equal(tf, gen)


def test_time_budget_schedule_ends_at_the_floor(tmp_path, data):
    """train.max_time: after warmup the schedule is re-planned (here to 30 steps, as a measurement might say),
    the run ends there with the learning rate at its floor, and the plan is stored in the checkpoint."""
    import json

    from vqladder.checkpoint import latest_valid_checkpoint, load_trainer_state
    from vqladder.train.trainer import lr_at

    cfg = tiny_run_config(data, tmp_path / "runs", name="tb", steps=100000, max_time=3600.0, warmup=10, log_every=1)
    tr = _trainer(cfg, data)
    seen = []
    tr._plan_steps = lambda seconds, steps, elapsed: seen.append((steps, elapsed)) or 30
    tr.fit()
    assert tr.step == 30 and seen and seen[0][0] == 5  # measured over steps 5..10
    lrs = [json.loads(l)["lr"] for l in (cfg.run_dir / "metrics.jsonl").read_text().splitlines() if '"lr"' in l]
    assert lrs[-1] == pytest.approx(lr_at(29, cfg.train, 30))
    assert lrs[-1] < cfg.train.lr * (cfg.train.min_lr_ratio + 0.01)  # the last step sits at the floor
    ckpt, _ = latest_valid_checkpoint(cfg.run_dir / "checkpoints")
    assert int(load_trainer_state(ckpt)["total_steps"]) == 30


def test_time_budget_plan_arithmetic(tmp_path, data):
    from vqladder.train.trainer import TIME_PLAN_MARGIN

    cfg = tiny_run_config(data, tmp_path / "runs", name="tp", steps=1000, max_time=12.0, warmup=10)
    tr = _trainer(cfg, data)
    tr.step = 10
    # 0.1 s/step measured, 2 s spent: 90% of the 10 s left = 90 more steps
    assert tr._plan_steps(1.0, 10, 2.0) == 10 + int(TIME_PLAN_MARGIN * 10 / 0.1)
    tr.cfg.steps = 50
    assert tr._plan_steps(1.0, 10, 2.0) == 50  # never beyond train.steps


def test_time_budget_resume_is_bitwise_identical(tmp_path, data):
    """A time-budgeted run killed after it planned its schedule resumes with that schedule: its weights equal
    those of a run told the planned step count up front."""
    b = tiny_run_config(data, tmp_path / "runs", name="b", steps=100000, ckpt_every=4, max_time=3600.0, warmup=10)
    tr = _trainer(b, data, fail_after=14)
    tr._plan_steps = lambda seconds, steps, elapsed: 20  # what a measurement could have given (deterministic here)
    with pytest.raises(Boom):
        tr.fit()  # plans at step 10, dies during step 15, after the step-12 checkpoint
    _trainer(b, data).fit(resume=True)  # no re-planning: the schedule comes from the checkpoint
    a = tiny_run_config(data, tmp_path / "runs", name="a", steps=20, ckpt_every=4, warmup=10)
    _trainer(a, data).fit()
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000020" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000020" / "model.safetensors"))
    assert [p.name for p in find_checkpoints(b.run_dir / "checkpoints")][-1] == "step_000020"
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_mfu_is_logged_and_counting_leaves_training_unchanged(tmp_path, data):
    import json

    a = tiny_run_config(data, tmp_path / "runs", name="with", steps=6, log_every=2)
    b = tiny_run_config(data, tmp_path / "runs", name="without", steps=6, log_every=2, mfu=False)
    ta, tb = _trainer(a, data), _trainer(b, data)
    ta.fit()
    tb.fit()
    assert ta.flops_per_token > 0 and tb.flops_per_token == 0
    recs = [json.loads(l) for l in (a.run_dir / "metrics.jsonl").read_text().splitlines() if '"mfu"' in l]
    assert recs and all(0 < r["mfu"] < 5 for r in recs)
    for (k, pa), pb in zip(ta.model.state_dict().items(), tb.model.state_dict().values()):
        assert torch.equal(pa, pb), k  # counting FLOPs moved no weight, buffer, RNG or data position


def test_time_budget_replans_once_halfway(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", name="rp", steps=100000, max_time=3600.0, warmup=10)
    tr = _trainer(cfg, data)
    plans = iter([60, 50])
    seen = []
    tr._plan_steps = lambda seconds, steps, elapsed: seen.append(tr.step) or next(plans)
    tr.fit()
    assert seen == [10, 35] and tr.step == 50  # planned after warmup, re-planned at the midpoint of 10..60
    assert tr.plan_points == [10, 35, -1]


def test_stage_guard_refuses_a_changed_stage_and_retrains_it_and_what_is_built_on_it(tmp_path):
    """A finished stage rerun with another config slice is refused in one line; with --retrain it is trained again
    (only its own files go), and a stage built on it (``after``) follows; an unchanged rerun is skipped."""
    import numpy as np

    from vqladder.data import WindowSampler
    from vqladder.models import CausalLM, LMConfig
    from vqladder.train import TrainerConfig
    from vqladder.train.stage import run_stage, set_retrain

    stream = np.random.default_rng(0).integers(0, 16, 4000).astype(np.uint16)
    tc = TrainerConfig(steps=3, batch_size=4, warmup=1, eval_every=-1, ckpt_every=-1, progress=False, mfu=False)

    def stage(name, width, after=(), steps=3):
        t = TrainerConfig(**{**__import__("dataclasses").asdict(tc), "steps": steps})
        return run_stage(name, tmp_path / name, CausalLM(LMConfig(vocab_size=16, context=16, d_model=width,
                                                                  n_heads=2, n_layers=1)), t,
                         lambda r, w: WindowSampler(stream, 16, 4, 0, r, w), log=lambda m: None, after=after)

    a = stage("a", 16)
    b = stage("b", 16, after=[tmp_path / "a"])
    assert stage("a", 16) == a and stage("b", 16, after=[tmp_path / "a"]) == b  # unchanged: skipped
    (tmp_path / "a" / "notes.md").write_text("mine")
    for changed in (lambda: stage("a", 32), lambda: stage("a", 16, steps=4)):
        with pytest.raises(VQLadderError, match="a was trained with another config .*--retrain"):
            changed()
    set_retrain(True)
    try:
        a2 = stage("a", 32)
    finally:
        set_retrain(False)
    assert a2["params"] != a["params"] and (tmp_path / "a" / "notes.md").read_text() == "mine"
    with pytest.raises(VQLadderError, match="before the stage it is built on \\(a\\) was retrained"):
        stage("b", 16, after=[tmp_path / "a"])
    set_retrain(True)
    try:
        stage("b", 16, after=[tmp_path / "a"])
    finally:
        set_retrain(False)
    assert stage("b", 16, after=[tmp_path / "a"])["stage"] == "b"  # now newer than a: skipped


def test_optimizer_grouping_muon_for_hidden_matrices_only():
    """Muon gets exactly the 2-D weights of the blocks' attention and MLP layers; embeddings, heads, norms and
    quantiser projections stay with AdamW; every trainable parameter is in exactly one group."""
    from vqladder.models import CausalLM, LMConfig, SequenceCompressor
    from vqladder.nn.layers import MLP, Attention
    from vqladder.train.optim import Optimizers, split_params

    comp = tiny_run_config("d", "o").model
    comp.vocab_size = 50
    for model in (CausalLM(LMConfig(vocab_size=50, context=16, d_model=32, n_heads=2, n_layers=2)),
                  SequenceCompressor(comp)):
        g = split_params(model)
        hidden = {id(p) for m in model.modules() if isinstance(m, (Attention, MLP)) for p in m.parameters()}
        assert {id(p) for p in g["muon"]} == hidden and all(p.dim() == 2 for p in g["muon"])
        names = {id(p): n for n, p in model.named_parameters()}
        assert not any("emb" in names[id(p)] or "head" in names[id(p)] for p in g["muon"])
        assert all(p.dim() < 2 for p in g["no_decay"])
        ids = [id(p) for grp in g.values() for p in grp]
        assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])
        opt = Optimizers(model, "muon", 1e-3, (0.9, 0.95), 0.01)
        assert isinstance(opt.opts["muon"], torch.optim.Muon) and isinstance(opt.opts["adamw"], torch.optim.AdamW)
        assert sum(len(pg["params"]) for pg in opt.param_groups) == len(ids)
        assert "muon" not in Optimizers(model, "adamw", 1e-3, (0.9, 0.95), 0.01).opts


class _FakeClock:
    """``time.time`` for the trainer that advances a fixed amount per call: a time-budgeted run plans and stops
    the same way on an idle laptop and a loaded CI machine (the real clock made this test fail under load)."""

    def __init__(self, tick: float = 0.01):
        self.now, self.tick = 1_000_000.0, tick

    def time(self) -> float:
        self.now += self.tick
        return self.now


def test_muon_resume_is_bitwise_identical_and_a_time_budget_ends_decayed(tmp_path, data, monkeypatch):
    cfg = tiny_run_config(data, tmp_path / "a", steps=12, ckpt_every=6, optimizer="muon")
    full = _trainer(cfg, data)
    full.fit()
    cfg2 = tiny_run_config(data, tmp_path / "b", steps=12, ckpt_every=6, optimizer="muon")
    with pytest.raises(Boom):
        _trainer(cfg2, data, fail_after=8).fit()
    resumed = _trainer(cfg2, data)
    resumed.fit(resume=True)
    for (n, p), (_, q) in zip(full.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(p, q), n
    # an AdamW checkpoint is not resumed as Muon (or the other way): one line
    cfg3 = tiny_run_config(data, tmp_path / "b", steps=14, ckpt_every=6, optimizer="adamw")
    with pytest.raises(VQLadderError, match="optimiser state is Muon's"):
        _trainer(cfg3, data).fit(resume=True)
    # a time-budgeted Muon run still ends at the schedule's floor
    import vqladder.train.trainer as trainer_mod
    from vqladder.train.trainer import lr_at

    monkeypatch.setattr(trainer_mod, "time", _FakeClock())
    cfg4 = tiny_run_config(data, tmp_path / "c", steps=1000, max_time=3.0, optimizer="muon")
    t = _trainer(cfg4, data)
    t.fit()
    assert t.step == t.total_steps < 1000
    assert lr_at(t.step - 1, cfg4.train, t.total_steps) <= cfg4.train.lr * cfg4.train.min_lr_ratio * 1.05


@pytest.mark.parametrize("t", [64, 256, 1024])
def test_attention_flops_are_counted_against_the_closed_form(t):
    """Projections 3 x 2·b·t·d·4d (forward + backward); attention 4·b·t²·d forward: the short path (t <= 128 on
    CPU) computes the full score matrix and its backward twice the forward; the SDPA kernel above it skips the
    masked half of a causal matrix, and its backward recomputes the scores (2.5x the forward)."""
    from vqladder.nn.layers import SHORT_ATTENTION, Attention
    from vqladder.train.flops import counter

    b, d = 2, 64
    a = Attention(d, 4)
    x = torch.randn(b, t, d, requires_grad=True)
    with counter() as fc:
        a(x, causal=True).sum().backward()
    proj = 3 * 2 * b * t * d * 4 * d
    fwd = 4 * b * t * t * d
    attn = 3 * fwd if t <= SHORT_ATTENTION else 0.5 * 3.5 * fwd
    assert fc.get_total_flops() == proj + attn
