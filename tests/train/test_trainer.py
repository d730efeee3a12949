"""``vqladder.train.trainer``: learning, bitwise resume, checkpoints, NaN policies, schedules, time budgets."""

import json

import pytest
import torch
from helpers import Boom, tiny_run_config, tiny_trainer
from safetensors.torch import load_file

from vqladder.errors import NonFiniteLossError, VQLadderError
from vqladder.models import SequenceCompressor
from vqladder.text.compressor import train_run
from vqladder.train import find_checkpoints
from vqladder.train.trainer import lr_at


def _poison_loss(t, at_call: int, factor: float) -> None:
    """Make the trainer's model return loss * factor on its at_call-th loss call."""
    orig, calls = t.model.loss, [0]

    def bad_loss(batch):
        calls[0] += 1
        loss, m = orig(batch)
        return (loss * factor if calls[0] == at_call else loss), m

    t.model.loss = bad_loss


@pytest.mark.slow  # 400 steps; the CLI end-to-end test trains and evaluates a run fast
def test_tiny_compressor_learns(tmp_path, iid_data):
    from vqladder.data import TokenShards
    from vqladder.eval.baselines import trivial_accuracy

    cfg = tiny_run_config(iid_data, tmp_path / "runs", steps=400, out_len=16)
    res = train_run(cfg)
    sh = TokenShards(iid_data)
    floor = trivial_accuracy(sh.train, sh.val, sh.vocab_size)  # about 0.26: the tokens are independent
    # only the codes can carry an independent token: a margin of 0.25 over the floor is far beyond chance on the
    # thousands of held-out tokens (measured: 0.637 for seeds 0 and 1)
    assert res["acc"] > floor + 0.25, (res, floor)
    # and the codebook has not collapsed: the codes carry more than 2 bits each (perplexity > 4; a code covers 2
    # independent 4-symbol tokens, 4 bits, and 2 bits would name one of them at most); measured 9.6 (10 codes used)
    assert res["perplexity"] > 4 and res["usage"] * res["codebook_size"] > 4, res
    lines = [json.loads(l) for l in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 5 and {"tokens", "time", "train_loss", "train_acc"} <= set(lines[0])
    assert json.loads((cfg.run_dir / "results.json").read_text())["step"] == 400
    assert (cfg.run_dir / "config.yaml").is_file() and (cfg.run_dir / "tokenizer").is_dir()


@pytest.mark.parametrize("kind", ["fsq", "vq"])
def test_resume_is_bitwise_identical(tmp_path, data, kind):
    a = tiny_run_config(data, tmp_path / "runs", name="a", kind=kind, steps=12, ckpt_every=4)
    tiny_trainer(a, data).fit()
    b = tiny_run_config(data, tmp_path / "runs", name="b", kind=kind, steps=12, ckpt_every=4)
    with pytest.raises(Boom):
        tiny_trainer(b, data, fail_after=10).fit()  # dies during step 11, after the step-8 checkpoint
    assert [p.name for p in find_checkpoints(b.run_dir / "checkpoints")] == ["step_000004", "step_000008"]
    tiny_trainer(b, data).fit(resume=True)
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    # the metrics log has no duplicated steps after resume
    steps = [json.loads(l)["step"] for l in (b.run_dir / "metrics.jsonl").read_text().splitlines()
             if "train_loss" in l]
    assert steps == sorted(set(steps))


def test_nan_loss_stops_and_keeps_checkpoint(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=10, ckpt_every=3, mfu=False)  # the poison counts loss calls
    t = tiny_trainer(cfg, data)
    _poison_loss(t, 5, float("nan"))
    with pytest.raises(NonFiniteLossError, match="step 4"):
        t.fit()
    assert [p.name for p in find_checkpoints(cfg.run_dir / "checkpoints")] == ["step_000003"]


def test_nan_skip_policy(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=6, nan_policy="skip", mfu=False)
    t = tiny_trainer(cfg, data)
    _poison_loss(t, 2, float("inf"))
    t.fit()
    assert t.step == 6
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


def test_existing_run_needs_resume(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", steps=2)
    tiny_trainer(cfg, data).fit()
    with pytest.raises(VQLadderError, match="--resume"):
        tiny_trainer(cfg, data).fit()


def test_unwritable_run_dir(tmp_path, data):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cfg = tiny_run_config(data, blocker, steps=2)  # out_dir is a file: the run dir cannot be created
    with pytest.raises(VQLadderError, match="not writable"):
        tiny_trainer(cfg, data).fit()


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


def test_nan_batch_does_not_poison_vq_codebook(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", kind="vq", steps=6, nan_policy="skip")
    t = tiny_trainer(cfg, data)
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


def test_time_budget_schedule_ends_at_the_floor(tmp_path, data):
    """train.max_time: after warmup the schedule is re-planned (here to 30 steps, as a measurement might say),
    the run ends there with the learning rate at its floor, and the plan is stored in the checkpoint."""
    import json

    from vqladder.checkpoint import latest_valid_checkpoint, load_trainer_state
    from vqladder.train.trainer import lr_at

    cfg = tiny_run_config(data, tmp_path / "runs", name="tb", steps=100000, max_time=3600.0, warmup=10, log_every=1)
    tr = tiny_trainer(cfg, data)
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
    tr = tiny_trainer(cfg, data)
    tr.step = 10
    # 0.1 s/step measured, 2 s spent: 90% of the 10 s left = 90 more steps
    assert tr._plan_steps(1.0, 10, 2.0) == 10 + int(TIME_PLAN_MARGIN * 10 / 0.1)
    tr.cfg.steps = 50
    assert tr._plan_steps(1.0, 10, 2.0) == 50  # never beyond train.steps


def test_time_budget_resume_is_bitwise_identical(tmp_path, data):
    """A time-budgeted run killed after it planned its schedule resumes with that schedule: its weights equal
    those of a run told the planned step count up front."""
    b = tiny_run_config(data, tmp_path / "runs", name="b", steps=100000, ckpt_every=4, max_time=3600.0, warmup=10)
    tr = tiny_trainer(b, data, fail_after=14)
    tr._plan_steps = lambda seconds, steps, elapsed: 20  # what a measurement could have given (deterministic here)
    with pytest.raises(Boom):
        tr.fit()  # plans at step 10, dies during step 15, after the step-12 checkpoint
    tiny_trainer(b, data).fit(resume=True)  # no re-planning: the schedule comes from the checkpoint
    a = tiny_run_config(data, tmp_path / "runs", name="a", steps=20, ckpt_every=4, warmup=10)
    tiny_trainer(a, data).fit()
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000020" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000020" / "model.safetensors"))
    assert [p.name for p in find_checkpoints(b.run_dir / "checkpoints")][-1] == "step_000020"
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_time_budget_replans_once_halfway(tmp_path, data):
    cfg = tiny_run_config(data, tmp_path / "runs", name="rp", steps=100000, max_time=3600.0, warmup=10)
    tr = tiny_trainer(cfg, data)
    plans = iter([60, 50])
    seen = []
    tr._plan_steps = lambda seconds, steps, elapsed: seen.append(tr.step) or next(plans)
    tr.fit()
    assert seen == [10, 35] and tr.step == 50  # planned after warmup, re-planned at the midpoint of 10..60
    assert tr.plan_points == [10, 35, -1]



def _ramped(cfg):
    """The tiny run's compressor with the rate term ramped over the first half of training."""
    cfg.model.rate_layers, cfg.model.rate_dim, cfg.model.rate_weight, cfg.model.rate_warmup = 1, 32, 0.5, 0.5
    cfg.model.validate()
    return cfg


def test_a_ramped_rate_term_follows_the_step_and_resumes_bitwise(tmp_path, data):
    """The trainer tells the model its progress (step / planned steps) before every step; ``rate_warmup`` ramps
    ``rate_weight`` by it (0 at the first step, full from half-way), and a killed run resumes to the same weights."""
    a = _ramped(tiny_run_config(data, tmp_path / "runs", name="a", steps=12, ckpt_every=4))
    ta = tiny_trainer(a, data)
    seen, orig = [], ta.model.set_progress
    ta.model.set_progress = lambda f: (seen.append((f, None)), orig(f), seen.__setitem__(-1, (f, ta.model.rate_weight_now())))
    ta.fit()
    assert [f for f, _ in seen] == [s / 12 for s in range(12)]
    assert [w for _, w in seen] == pytest.approx([0.5 * min(1.0, s / 6) for s in range(12)])
    b = _ramped(tiny_run_config(data, tmp_path / "runs", name="b", steps=12, ckpt_every=4))
    with pytest.raises(Boom):
        tiny_trainer(b, data, fail_after=10).fit()
    tiny_trainer(b, data).fit(resume=True)
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    assert wa.keys() == wb.keys() and any(k.startswith("rate.") for k in wa)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def _selecting(cfg, data, planted, fail_after=None):
    """A trainer whose ``select`` score is planted by step (lowest at the step that should be kept)."""
    cfg.train.select_every, cfg.train.keep_last = 2, -1
    trainer = []
    trainer.append(tiny_trainer(cfg, data, fail_after, select=lambda m: planted[trainer[0].step]))
    return trainer[0]


def test_select_keeps_the_best_scored_weights_and_resumes_to_them_bitwise(tmp_path, data):
    """With ``select_every``, the run trains its whole budget and ends holding the weights of the step its
    validation score liked best (its final checkpoint and evaluation see them); a run killed after that step
    resumes to the same weights and choice."""
    planted = {2: 5.0, 4: 1.0, 6: 3.0, 8: 2.0, 10: 4.0, 12: 1.5}
    a = tiny_run_config(data, tmp_path / "runs", name="a", steps=12, ckpt_every=2)
    ta = _selecting(a, data, planted)
    ta.fit()
    assert ta.best_step == 4 and ta.step == 12
    ck = a.run_dir / "checkpoints"
    w4 = load_file(str(ck / "step_000004" / "model.safetensors"))
    w12 = load_file(str(ck / "step_000012" / "model.safetensors"))
    w10 = load_file(str(ck / "step_000010" / "model.safetensors"))
    assert all(torch.equal(w4[k], w12[k]) for k in w4)
    assert not all(torch.equal(w4[k], w10[k]) for k in w4)  # training went on after the chosen step
    scored = [json.loads(l) for l in (a.run_dir / "metrics.jsonl").read_text().splitlines() if '"select"' in l]
    assert [(r["step"], r["select"]) for r in scored] == sorted(planted.items())
    b = tiny_run_config(data, tmp_path / "runs", name="b", steps=12, ckpt_every=2)
    with pytest.raises(Boom):
        _selecting(b, data, planted, fail_after=10).fit()  # dies during step 11, after the step-10 checkpoint
    tb = _selecting(tiny_run_config(data, tmp_path / "runs", name="b", steps=12, ckpt_every=2), data, planted)
    tb.fit(resume=True)
    assert tb.best_step == 4
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000012" / "model.safetensors"))
    assert all(torch.equal(w12[k], wb[k]) for k in w12)


def test_select_every_without_a_validation_split_warns_and_keeps_the_last_weights(tmp_path, data, capsys):
    """A stage with no validation split cannot select: ``select_every`` is reported as ignored, not silently."""
    cfg = tiny_run_config(data, tmp_path / "runs", steps=4, ckpt_every=2)
    cfg.train.select_every = 2
    t = tiny_trainer(cfg, data)
    t.fit()
    assert "train.select_every is ignored" in capsys.readouterr().err
    assert t.best_weights is None and not any('"select"' in l for l in (cfg.run_dir / "metrics.jsonl").read_text().splitlines())


def _fake_compile_error():
    """An exception class as torch.compile's machinery raises them (its module is dynamo's)."""
    return type("BackendCompilerFailed", (RuntimeError,), {"__module__": "torch._dynamo.exc"})


def test_compile_that_fails_trains_eagerly_with_one_warning(tmp_path, data, monkeypatch, capsys):
    """``train.compile`` on a machine where torch.compile cannot build the model (no C++ toolchain, an
    unsupported op): one warning, then the same run as an eager one, weight for weight."""
    a = tiny_run_config(data, tmp_path / "runs", name="a", steps=6, ckpt_every=-1)
    tiny_trainer(a, data).fit()
    err, calls = _fake_compile_error(), []

    def failing_compile(fn, **kw):
        def call(*args):
            calls.append(1)
            raise err("inductor: no working C++ compiler")
        return call

    monkeypatch.setattr(torch, "compile", failing_compile)
    b = tiny_run_config(data, tmp_path / "runs", name="b", steps=6, ckpt_every=-1)
    b.train.compile = True
    tiny_trainer(b, data).fit()
    out = capsys.readouterr().err
    assert out.count("train.compile: torch.compile failed (BackendCompilerFailed") == 1 and "eagerly" in out
    assert len(calls) == 1  # not retried at every step
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000006" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000006" / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_compiled_loss_without_gradient_falls_back_to_eager(tmp_path, data, monkeypatch, capsys):
    """A compiled graph that returns a loss with no gradient (inductor does this for some graphs on CPU) would
    fail at backward: the trainer sees it on the first step, warns once and trains eagerly, weight for weight."""
    a = tiny_run_config(data, tmp_path / "runs", name="a", steps=4, ckpt_every=-1)
    tiny_trainer(a, data).fit()

    def detaching_compile(fn, **kw):
        def call(*args):
            with torch.no_grad():
                return fn(*args)
        return call

    monkeypatch.setattr(torch, "compile", detaching_compile)
    b = tiny_run_config(data, tmp_path / "runs", name="b", steps=4, ckpt_every=-1, mfu=False)
    b.train.compile = True
    tiny_trainer(b, data).fit()
    assert capsys.readouterr().err.count("carries no gradient); training eagerly") == 1
    wa = load_file(str(a.run_dir / "checkpoints" / "step_000004" / "model.safetensors"))
    wb = load_file(str(b.run_dir / "checkpoints" / "step_000004" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_model_error_under_compile_is_not_swallowed(tmp_path, data, monkeypatch):
    """Only the compiler's own failures fall back to eager; the model's errors surface as they would eagerly."""
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: (lambda *a: (_ for _ in ()).throw(Boom())))
    cfg = tiny_run_config(data, tmp_path / "runs", steps=3, ckpt_every=-1)
    cfg.train.compile = True
    with pytest.raises(Boom):
        tiny_trainer(cfg, data).fit()


@pytest.mark.slow  # compiles a model for real (about half a minute cold)
def test_compiled_training_matches_eager_and_keeps_its_checkpoints(tmp_path, data):
    """``train.compile`` trains the same model as eager (losses equal to rounding, a ramped rate term included:
    the progress the trainer sets each step must not force a recompilation per step), and its checkpoints hold
    the same keys, so eval, resume and every reader see a plain model."""
    import torch._dynamo

    runs = {}
    for name, comp in (("eager", False), ("compiled", True)):
        cfg = _ramped(tiny_run_config(data, tmp_path / "runs", name=name, steps=12, ckpt_every=-1, log_every=1))
        cfg.train.compile = comp
        torch._dynamo.reset()
        torch._dynamo.utils.counters.clear()
        t = tiny_trainer(cfg, data)
        graphs, orig = [], t.model.set_progress  # compiled graphs so far, before each step
        t.model.set_progress = lambda f: (graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"]),
                                          orig(f))
        t.fit()
        losses = [json.loads(l)["train_loss"] for l in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()
                  if "train_loss" in l]
        runs[name] = (losses, load_file(str(cfg.run_dir / "checkpoints" / "step_000012" / "model.safetensors")),
                      graphs)
    (le, we, ge), (lc, wc, gc) = runs["eager"], runs["compiled"]
    assert len(le) == len(lc) == 12
    assert lc == pytest.approx(le, rel=2e-3, abs=2e-3)
    assert we.keys() == wc.keys()
    assert set(ge) == {0} and gc[1] > 0  # eager compiles nothing; compiled did compile
    # steps 1-2 compile (the rotary tables are built on the first call); nothing after: the progress the trainer
    # sets before every step is not baked into the graphs
    assert gc[3:] == [gc[3]] * 9, gc
