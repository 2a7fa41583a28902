"""Benchmark a Pose3D model: parameters, FLOPs, train-step / forward throughput, peak memory.

Every timing is read against this machine's measured fp32 matrix-multiply peak (a large square
matmul timed here), and the comparisons are ratios measured within one run (interleaved
repetitions, medians), so they survive a noisy or shared machine better than absolute numbers.

    python tools/bench/benchmark.py --config configs/pose3d/train_h36m_small_global.yaml \\
        --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --clip_len 81 --batch 2
    python tools/bench/benchmark.py --dim_feat 256 --mlp_ratio 4 --clip_len 81 --batch 2 --mode all

Without ``--config`` the model is the default config (MotionBERT full) with the ``--dim_feat``,
``--mlp_ratio``, ``--depth`` overrides. ``--mode all`` also reports the fused/explicit attention
ratio and the version 2 / version 1 cost ratio. Import :func:`measure_train_step`,
:func:`measure_forward`, :func:`count_flops` or :func:`matmul_peak_flops` from other tools.

``--mode attention`` times one attention call (forward + backward, and no-grad forward) of the
fused dispatch, PyTorch's SDPA kernel and the explicit path for spatial (17 joints) and temporal
(``--lengths``) token counts. ``--mode throughput`` measures end-to-end training throughput
(clips/s) with the real Dataset (``make_dataset``), DataLoader (``build_train_loader``) and
``Trainer.train_step`` on synthetic clips written to a temporary folder: data loading alone,
compute alone (the same step on in-memory tensors) and both together, interleaved per round
(:func:`measure_throughput`). ``--mode compile`` compares an eager and a ``torch.compile``-d
train step (first step = compilation, then steady state, interleaved).

    python tools/bench/benchmark.py --config configs/pose3d/quickstart.yaml --mode throughput
    python tools/bench/benchmark.py --config configs/pose3d/quickstart.yaml --mode compile --batch 64

``--mode allocator`` times the train step of ``--shapes`` (default synthetic_wild, quickstart)
under each memory allocator installed (the system malloc, and tcmalloc / jemalloc preloaded with
``LD_PRELOAD``; lib/engine/memory.py), one process per allocator and round, rounds interleaved:
median step time, page faults per step and peak resident memory (``--mode step`` is one such
process's measurement, printed as a JSON line).

    python tools/bench/benchmark.py --mode allocator --rounds 2
"""
from __future__ import annotations

import argparse
import copy
import os
import resource
import statistics
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from lib.data.codec import PoseCodec
from lib.model.factory import build_model, count_parameters
from lib.config.schema import HYPER_DEFAULTS, TRAIN_DEFAULTS, load_config, read_yaml
from easydict import EasyDict

MATMUL_N = 2048                                                      # peak reference: 2048^3 matmul
DEFAULT_LABEL = [[0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]]   # manual_joint_label1


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one ``fn()`` call (device synchronised)."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_fn(n: int = MATMUL_N, device: str | torch.device = "cpu",
              dtype: torch.dtype = torch.float32) -> tuple[Callable[[], None], int]:
    """A square ``n^3`` matmul (fp32 unless ``dtype``) and its FLOP count (the hardware reference)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return (lambda: a @ b), 2 * n ** 3


def matmul_peak_flops(n: int = MATMUL_N, repeats: int = 5, device: str | torch.device = "cpu",
                      dtype: torch.dtype = torch.float32) -> float:
    """This machine's matmul FLOP/s (fp32 unless ``dtype``): the best of ``repeats`` timings of an ``n^3`` matmul."""
    fn, flops = matmul_fn(n, device, dtype)
    fn()
    return flops / min(time_call(fn, torch.device(device)) for _ in range(repeats))


def matmul_line(device: str | torch.device = "cpu") -> str:
    """The machine's fp32 matmul rate as every timing report prints it."""
    return (f"fp32 matmul ({MATMUL_N}^3, {torch.get_num_threads()} threads): "
            f"{matmul_peak_flops(device=device) / 1e9:.1f} GFLOP/s")


def train_step_fn(model: torch.nn.Module, batch: torch.Tensor, explicit: bool = False,
                  optimizer: torch.optim.Optimizer | None = None, bf16: bool = False) -> Callable[[], None]:
    """One training step: forward (fused, or explicit attention; under bf16 autocast if ``bf16``),
    MSE-style loss in fp32, backward, AdamW (the trainer's ``build_optimizer`` unless ``optimizer`` is given)."""
    if optimizer is None:                              # the trainer's AdamW
        from lib.engine.trainer import build_optimizer
        optimizer = build_optimizer(model, EasyDict(learning_rate=1e-6, weight_decay=0.01, freeze_backbone_epochs=0))

    def step() -> None:
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.forward_with_extras(batch, return_attention=True)["output"] if explicit else model(batch)
        out.float().square().mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return step


def forward_fn(model: torch.nn.Module, batch: torch.Tensor, explicit: bool = False) -> Callable[[], None]:
    """One inference forward pass under ``torch.no_grad`` (eval mode)."""
    def forward() -> None:
        with torch.no_grad():
            model.forward_with_extras(batch, return_attention=True) if explicit else model(batch)
    return forward


def count_flops(model: torch.nn.Module, batch: torch.Tensor, train: bool = True) -> int:
    """FLOPs (matmul = 2 MAC) of one forward (+ backward if ``train``), from FlopCounterMode.

    Counted on the explicit attention path: FlopCounterMode has no formula for the CPU fused
    attention kernel and would silently drop the attention matmuls (~6% of a 243-frame clip).
    """
    with FlopCounterMode(display=False) as counter:
        out = model.forward_with_extras(batch, return_attention=True)["output"]
        if train:
            out.square().mean().backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory so far: CUDA max allocated, or the process's max resident set size on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_times(fns: dict[str, Callable[[], None]], iters: int, device: torch.device) -> dict[str, float]:
    """Median seconds per call of each function, timed round-robin (one warm-up call each)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(iters):
        for name, fn in fns.items():
            times[name].append(time_call(fn, device))
    return {name: statistics.median(ts) for name, ts in times.items()}


def measure(model: torch.nn.Module, batch: torch.Tensor, train: bool, iters: int = 3) -> dict:
    """Seconds, clips/s and achieved FLOP/s of a train step (forward + backward + AdamW, train
    mode) or an inference forward (eval mode, no grad) of ``model`` on ``batch``."""
    model.train(train)
    step = train_step_fn(model, batch) if train else forward_fn(model, batch)
    seconds = median_times({"step": step}, iters, batch.device)["step"]
    flops = count_flops(model, batch, train=train)
    return {"seconds": seconds, "clips_per_s": batch.shape[0] / seconds, "flops": flops,
            "flops_per_s": flops / seconds, "peak_memory_mb": peak_memory_mb(batch.device)}


def measure_train_step(model: torch.nn.Module, batch: torch.Tensor, iters: int = 3) -> dict:
    """:func:`measure` of a train step (fused attention)."""
    return measure(model, batch, train=True, iters=iters)


def measure_forward(model: torch.nn.Module, batch: torch.Tensor, iters: int = 3) -> dict:
    """:func:`measure` of an inference forward."""
    return measure(model, batch, train=False, iters=iters)


def compare(models: dict[str, torch.nn.Module], batch: torch.Tensor, iters: int, train: bool) -> dict[str, float]:
    """Median seconds of fused/explicit x version variants, interleaved so the ratios share conditions."""
    make = train_step_fn if train else forward_fn
    fns = {"matmul": matmul_fn(device=batch.device)[0]}
    for name, model in models.items():
        model.train(train)
        fns[f"{name} fused"] = make(model, batch)
        fns[f"{name} explicit"] = make(model, batch, explicit=True)
    return median_times(fns, iters, batch.device)


def model_configs(args) -> dict[str, EasyDict]:
    """The benchmarked config per version ('v1', 'v2'), from --config/--hyper_cfg or the CLI sizes."""
    if args.config:
        cfg = load_config(args.config, args.hyper_cfg)
    else:
        cfg = EasyDict({**TRAIN_DEFAULTS, **HYPER_DEFAULTS, "joint_label": DEFAULT_LABEL})
        if args.hyper_cfg:
            cfg.update(read_yaml(args.hyper_cfg))
    for key in ("dim_feat", "dim_rep", "mlp_ratio", "depth"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    cfg.joint_label = cfg.joint_label or DEFAULT_LABEL
    versions = [1, 2] if args.mode == "all" else [args.version or cfg.version]
    return {f"v{v}": EasyDict({**copy.deepcopy(cfg), "version": v}) for v in versions}


def report(args) -> None:
    args.batch, args.clip_len = args.batch or 2, args.clip_len or 81
    device = torch.device(args.device)
    torch.manual_seed(0)
    cfgs = model_configs(args)
    models = {name: build_model(cfg, verbose=False).to(device) for name, cfg in cfgs.items()}
    cfg = next(iter(cfgs.values()))
    batch = torch.randn(args.batch, args.clip_len, cfg.num_joints, PoseCodec.from_config(cfg).input_channels,
                        device=device)
    print(f"device {device}, {torch.get_num_threads()} threads, fp32 2048^3 matmul peak (best of 5) "
          f"{matmul_peak_flops(device=device) / 1e9:.1f} GFLOP/s")
    print(f"clip_len {args.clip_len}, batch {args.batch}, dim_feat {cfg.dim_feat}, mlp_ratio {cfg.mlp_ratio}, "
          f"depth {cfg.depth}, heads {cfg.num_heads}")
    for name, model in models.items():
        print(f"{name}: {count_parameters(model):,} parameters, forward "
              f"{count_flops(model, batch[:1], train=False) / 1e9:.2f} GFLOPs per clip")
    modes = ["train", "forward"] if args.mode == "all" else [args.mode]
    for mode in modes:
        train = mode == "train"
        secs = compare(models, batch, args.iters, train)
        peak = 2 * MATMUL_N ** 3 / secs.pop("matmul")
        flops = {name: count_flops(m, batch, train=train) for name, m in models.items()}
        print(f"-- {mode} ({'forward+backward+AdamW' if train else 'no_grad forward'}), median of {args.iters}; "
              f"matmul peak timed in the same round-robin: {peak / 1e9:.1f} GFLOP/s")
        for key, s in secs.items():
            achieved = flops[key.split()[0]] / s
            print(f"{key:12s} {s * 1e3:8.1f} ms  {args.batch / s:7.2f} clips/s  "
                  f"{achieved / 1e9:6.1f} GFLOP/s = {achieved / peak:5.1%} of peak")
        for name in models:
            print(f"{name} fused / explicit time: {secs[f'{name} fused'] / secs[f'{name} explicit']:.3f}")
        if len(models) == 2:
            print(f"v2 / v1 time (fused): {secs['v2 fused'] / secs['v1 fused']:.3f}")
    print(f"peak memory: {peak_memory_mb(device):.0f} MB ({'max allocated' if device.type == 'cuda' else 'process max RSS'})")


# -- attention dispatch -------------------------------------------------------------------------
def attention_fns(shape: tuple[int, int, int, int], device: torch.device) -> dict[str, Callable[[], None]]:
    """fused (the model's dispatch), sdpa (always the SDPA kernel) and explicit attention calls on
    ``q, k, v [B, H, L, d]``: forward + backward, and no-grad forward (names suffixed ' fwd')."""
    from lib.model.modules import attention
    q, k, v = (torch.randn(*shape, device=device, requires_grad=True) for _ in range(3))
    grad, scale = torch.randn(*shape, device=device), shape[-1] ** -0.5

    def call(kind: str, backward: bool) -> Callable[[], None]:
        def fn() -> None:
            saved = attention.CPU_SDPA_MIN_LEN
            if kind == "sdpa":
                attention.CPU_SDPA_MIN_LEN = 0
            try:
                with torch.set_grad_enabled(backward):
                    out, _ = attention.attend(q, k, v, None, scale, kind == "explicit")
                if backward:
                    out.backward(grad)
                    q.grad = k.grad = v.grad = None
            finally:
                attention.CPU_SDPA_MIN_LEN = saved
        return fn
    return {f"{kind}{'' if backward else ' fwd'}": call(kind, backward)
            for backward in (True, False) for kind in ("fused", "sdpa", "explicit")}


def report_attention(args) -> None:
    """Per-call attention timings of the fused dispatch vs SDPA vs explicit, interleaved."""
    device = torch.device(args.device)
    cfgs = model_configs(EasyDict({**vars(args), "mode": "train"}))
    cfg = next(iter(cfgs.values()))
    heads, d, batch = cfg.num_heads, cfg.dim_feat // cfg.num_heads, args.batch or 2
    args.clip_len = args.clip_len or 81
    print(f"device {device}, {torch.get_num_threads()} threads; heads {heads}, head dim {d}, batch {batch}; "
          f"median of {args.iters} interleaved calls (forward+backward; 'fwd' = no-grad forward)")
    rows = [(f"spatial  L=17  (T={T})", (batch * T, heads, cfg.num_joints, d)) for T in args.lengths]
    rows += [(f"temporal L={T}", (batch * cfg.num_joints, heads, T, d)) for T in args.lengths]
    for name, shape in rows:
        secs = median_times(attention_fns(shape, device), args.iters, device)
        print(f"{name:22s} " + "  ".join(f"{k} {v * 1e3:7.2f} ms" for k, v in secs.items() if " fwd" not in k)
              + f" | fused/explicit {secs['fused'] / secs['explicit']:.2f} (fwd {secs['fused fwd'] / secs['explicit fwd']:.2f})"
              + f"  sdpa/explicit {secs['sdpa'] / secs['explicit']:.2f} (fwd {secs['sdpa fwd'] / secs['explicit fwd']:.2f})")


# -- end-to-end training throughput ---------------------------------------------------------------
def synthetic_clip_root(work_dir: str, cfg) -> str:
    """Write a 'tiny' synthetic H36M source and slice it into both clip stores with the config's
    clip settings; returns the data root (subset 'BENCH')."""
    from lib.data.prepare import convert_source_to_clips
    from lib.data.synthetic import write_synthetic_h36m
    write_synthetic_h36m(os.path.join(work_dir, "source.pkl"), seed=0, size="tiny")
    convert_source_to_clips(work_dir, "source.pkl", os.path.join(work_dir, "clips", "BENCH"),
                            cfg.clip_len, cfg.data_stride, cfg.sample_stride, stores="both")
    return os.path.join(work_dir, "clips")


def make_trainer(cfg, work_dir: str):
    """A Trainer with model, optimizer and (compiled if ``cfg.compile``) wrapped model, but no
    data/evaluator set-up, so ``train_step`` is the real training step."""
    from lib.engine.trainer import Trainer
    trainer = Trainer(cfg, os.path.join(work_dir, "checkpoint"), seed=0)
    trainer.prepare_optimisation()
    trainer.model.train()
    return trainer


def measure_throughput(cfg, steps: int = 10, rounds: int = 3, work_dir: str | None = None) -> dict:
    """Training clips/s of ``cfg`` (batch_size, num_workers, clip_store, model) on synthetic clips.

    Per round, interleaved: ``data`` = iterate ``steps`` batches of the training DataLoader only;
    ``compute`` = ``steps`` calls of ``Trainer.train_step`` on one in-memory batch;
    ``end_to_end`` = ``steps`` batches from the DataLoader through ``train_step``. A round starts
    a fresh iterator (persistent workers stay up); one warm-up round is not counted. Returns the
    median clips/s of each, the number of train clips and the batch size.
    """
    import tempfile
    from lib.data.dataset import make_dataset
    from lib.engine.trainer import build_train_loader
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        cfg = EasyDict({**cfg, "data_root": synthetic_clip_root(tmp, cfg), "subset_list": ["BENCH"]})
        loader = build_train_loader(make_dataset(cfg, "train"), cfg, 0, 1, seed=0)
        steps = min(steps, len(loader))
        trainer = make_trainer(cfg, tmp)
        coin = torch.Generator().manual_seed(0)
        fixed = next(iter(loader))

        def data() -> int:
            n = 0
            for i, (x, _) in zip(range(steps), loader):
                n += x.shape[0]
            return n

        def compute() -> int:
            for _ in range(steps):
                trainer.train_step(*fixed, coin)
            return steps * fixed[0].shape[0]

        def end_to_end() -> int:
            n = 0
            for i, (x, y) in zip(range(steps), loader):
                loss, _ = trainer.train_step(x, y, coin)
                n += x.shape[0]
            float(loss)          # one host sync per round, as the progress bar does
            return n

        fns = {"data": data, "compute": compute, "end_to_end": end_to_end}
        rates: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(rounds + 1):
            loader.sampler.set_epoch(r)
            for name, fn in fns.items():
                synchronize(trainer.device)
                start = time.perf_counter()
                n = fn()
                synchronize(trainer.device)
                if r:
                    rates[name].append(n / (time.perf_counter() - start))
        result = {k: statistics.median(v) for k, v in rates.items()}
        result.update(train_clips=len(loader.dataset), batch_size=cfg.batch_size, steps=steps,
                      workers=cfg.num_workers, store=type(loader.dataset).__name__)
        del loader
        return result


def benchmark_config(args) -> EasyDict:
    """The training config of --config (default: the quick-start one) with the CLI overrides."""
    cfg = load_config(args.config or "configs/pose3d/quickstart.yaml", args.hyper_cfg)
    for key in ("dim_feat", "dim_rep", "mlp_ratio", "depth", "version"):
        if getattr(args, key, None) is not None:
            cfg[key] = getattr(args, key)
    if args.batch:
        cfg.batch_size = args.batch
    if getattr(args, "clip_len", None):
        cfg.clip_len = args.clip_len
        cfg.maxlen = max(cfg.maxlen, args.clip_len)
        cfg.data_stride = min(cfg.data_stride, args.clip_len)
    if getattr(args, "workers", None) is not None:
        cfg.num_workers = args.workers
    cfg.clip_store = getattr(args, "clip_store", "npy")
    cfg.compile = bool(getattr(args, "compile", False))
    cfg.max_iters_per_epoch = 0
    if cfg.version == 2:
        cfg.joint_label = cfg.joint_label or DEFAULT_LABEL
    return cfg


def report_throughput(args) -> None:
    cfg = benchmark_config(args)
    res = measure_throughput(cfg, args.steps, args.rounds)
    print(f"{torch.get_num_threads()} threads; model dim {cfg.dim_feat} depth {cfg.depth} mlp {cfg.mlp_ratio} "
          f"v{cfg.version}{' compiled' if cfg.compile else ''}; clips T={cfg.clip_len}, batch {res['batch_size']}, "
          f"{res['store']} ({res['train_clips']} train clips), {res['workers']} workers; "
          f"median of {args.rounds} interleaved rounds of {res['steps']} batches")
    for key in ("data", "compute", "end_to_end"):
        print(f"{key:11s} {res[key]:10.1f} clips/s")
    print(f"loading time per batch as a fraction of compute time: {res['compute'] / res['data']:.1%} "
          f"(compute / data rate); end-to-end / compute: {res['end_to_end'] / res['compute']:.3f}")


def report_compile(args) -> None:
    """Eager vs torch.compile train step (Trainer.train_step on in-memory tensors), interleaved."""
    import tempfile
    cfg = benchmark_config(args)
    x = torch.randn(cfg.batch_size, cfg.clip_len, 17, 3)
    coin = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {"eager": make_trainer(EasyDict({**cfg, "compile": False}), tmp)}
        compiled = make_trainer(EasyDict({**cfg, "compile": True}), tmp)
        compiled.model.load_state_dict(trainers["eager"].model.state_dict())
        trainers["compiled"] = compiled
        first = {name: time_call(lambda t=t: t.train_step(x, x, coin), t.device) for name, t in trainers.items()}
        secs = median_times({name: (lambda t=t: t.train_step(x, x, coin)) for name, t in trainers.items()},
                            args.iters, trainers["eager"].device)
    print(f"{torch.get_num_threads()} threads; dim {cfg.dim_feat} depth {cfg.depth}, T={cfg.clip_len}, "
          f"batch {cfg.batch_size}; median of {args.iters} interleaved steps after 2 warm-up steps")
    for name in trainers:
        print(f"{name:9s} first step {first[name]:8.2f} s   steady {secs[name] * 1e3:9.1f} ms")
    print(f"compiled / eager steady-state time: {secs['compiled'] / secs['eager']:.3f}")


# -- step profile at the shipped shapes -----------------------------------------------------------
# (model sizes, clip length, batch) of the configs the step is tuned for; 'full' is MotionBERT's
# H36M model at 81 frames, batch 1 (its 243-frame step takes minutes on 2 cores).
STEP_SHAPES = {
    "quickstart": dict(dim_feat=64, dim_rep=128, depth=2, num_heads=4, mlp_ratio=2, clip_len=27, batch=16),
    "synthetic_wild": dict(dim_feat=128, dim_rep=512, depth=5, num_heads=8, mlp_ratio=2, clip_len=81, batch=16),
    "lite": dict(dim_feat=256, dim_rep=512, depth=5, num_heads=8, mlp_ratio=4, clip_len=81, batch=2),
    "full": dict(dim_feat=512, dim_rep=512, depth=5, num_heads=8, mlp_ratio=2, clip_len=81, batch=1),
}

# profiler op name -> category of the step profile (first match wins)
OP_CATEGORIES = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")),
    ("attention kernel", ("scaled_dot_product", "flash_attention")),
    ("copy/cat", ("aten::copy_", "aten::cat", "aten::clone", "aten::contiguous", "aten::stack")),
    ("gelu", ("aten::gelu",)),
    ("layer_norm", ("layer_norm",)),
    ("tanh", ("aten::tanh",)),
    ("softmax", ("softmax",)),
    ("optimizer", ("_foreach", "_fused_adamw", "aten::addcdiv", "aten::lerp", "aten::sqrt", "aten::addcmul")),
)


def shape_model(shape: dict, device: torch.device, version: int = 1) -> tuple[torch.nn.Module, torch.Tensor]:
    """The DSTformer of a :data:`STEP_SHAPES` entry and a random batch for it (seeded)."""
    torch.manual_seed(0)
    sizes = {k: v for k, v in shape.items() if k not in ("clip_len", "batch")}
    cfg = EasyDict({**TRAIN_DEFAULTS, **HYPER_DEFAULTS, **sizes, "version": version, "maxlen": shape["clip_len"],
                    "joint_label": DEFAULT_LABEL})
    model = build_model(cfg, verbose=False).to(device)
    return model, torch.randn(shape["batch"], shape["clip_len"], 17, 3, device=device)


def profile_step(step: Callable[[], None], steps: int = 2) -> tuple[float, dict[str, float]]:
    """Total self CPU ms of ``steps`` profiled calls of ``step`` (after one warm-up) and its share
    per :data:`OP_CATEGORIES` category ('other' = everything else)."""
    from torch.profiler import ProfilerActivity, profile
    step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    shares: dict[str, float] = {}
    total = 0.0
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3
        total += ms
        name = next((cat for cat, keys in OP_CATEGORIES if any(k in event.key for k in keys)), "other")
        shares[name] = shares.get(name, 0.0) + ms
    return total, {k: v / total for k, v in sorted(shares.items(), key=lambda kv: -kv[1])}


def report_profile(args) -> None:
    """torch.profiler table of the train step (forward + backward + the trainer's AdamW) per shape."""
    device = torch.device(args.device)
    names = args.shapes or list(STEP_SHAPES)
    print(f"{torch.get_num_threads()} threads; self CPU time of 2 profiled steps after 1 warm-up, by op category")
    for name in names:
        model, batch = shape_model(STEP_SHAPES[name], device)
        total, shares = profile_step(train_step_fn(model, batch))
        print(f"{name:15s} {total / 2:8.1f} ms/step  " + "  ".join(f"{k} {v:.1%}" for k, v in shares.items()))


# -- precision: CPU capabilities, matmul rates, step times fp32 / bf16 / auto, MotionBERT ---------
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8", "avx_vnni")


def cpu_capabilities() -> tuple[str, dict[str, bool]]:
    """The CPU model name and which of :data:`CPU_FLAGS` it reports (Linux /proc/cpuinfo)."""
    name, flags = "unknown CPU", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    return name, {flag: flag in flags for flag in CPU_FLAGS}


def motionbert_dstformer(checkout: str) -> type:
    """MotionBERT's own ``DSTformer`` class, read at run time from a checkout (work tree, or bare
    git directory: ``HEAD:lib/model/DSTformer.py``) for timing only; its ``lib.model.drop``
    import is pointed at Pose3D's DropPath. Nothing of it is stored in Pose3D."""
    import subprocess
    import types
    path = os.path.join(checkout, "lib", "model", "DSTformer.py")
    if os.path.isfile(path):
        with open(path) as f:
            source = f.read()
    else:
        source = subprocess.run(["git", "-C", checkout, "show", "HEAD:lib/model/DSTformer.py"], check=True,
                                capture_output=True, text=True).stdout
    source = source.replace("from lib.model.drop import DropPath", "from lib.model.modules import DropPath")
    module = types.ModuleType("motionbert_dstformer")
    exec(compile(source, f"{checkout}:lib/model/DSTformer.py", "exec"), module.__dict__)  # noqa: S102
    return module.DSTformer


def auto_choice(model: torch.nn.Module, batch: torch.Tensor, name: str):
    """What ``precision: auto`` picks for this model and batch (the trainer's decision, lib/engine/precision.py)."""
    from lib.engine.precision import choose_precision

    def step(bf16: bool) -> None:
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(batch)
        out.float().square().mean().backward()
        model.zero_grad(set_to_none=True)
    return choose_precision("auto", batch.device, step, ("benchmark", name, tuple(batch.shape)))


def report_precision(args) -> None:
    """CPU flags, fp32/bf16 matmul rates, and per shape the train step in fp32, bf16 and what
    ``precision: auto`` picks (plus MotionBERT's DSTformer with ``--motionbert``), interleaved."""
    device = torch.device(args.device)
    name, flags = cpu_capabilities()
    print(f"CPU: {name}; {torch.get_num_threads()} threads; flags: "
          + " ".join(f"{k}={'yes' if v else 'no'}" for k, v in flags.items()))
    fp32, bf16 = (matmul_peak_flops(device=device, dtype=d) / 1e9 for d in (torch.float32, torch.bfloat16))
    print(f"{MATMUL_N}^3 matmul (best of 5): fp32 {fp32:.1f} GFLOP/s, bf16 {bf16:.1f} GFLOP/s (bf16/fp32 {bf16 / fp32:.2f})")
    mb_class = motionbert_dstformer(args.motionbert) if args.motionbert else None
    for shape_name in args.shapes or list(STEP_SHAPES):
        shape = STEP_SHAPES[shape_name]
        model, batch = shape_model(shape, device)
        try:
            choice = auto_choice(model, batch, shape_name)
        except ImportError:             # a Pose3D tree from before precision: auto (lib/engine/precision.py)
            choice = None
        fns = {"fp32": train_step_fn(model, batch), "bf16": train_step_fn(model, batch, bf16=True)}
        if mb_class is not None:
            torch.manual_seed(0)
            mb = mb_class(dim_in=3, dim_out=3, dim_feat=shape["dim_feat"], dim_rep=shape["dim_rep"],
                          depth=shape["depth"], num_heads=shape["num_heads"], mlp_ratio=shape["mlp_ratio"],
                          maxlen=shape["clip_len"]).to(device)
            fns["MotionBERT fp32"] = train_step_fn(mb, batch, optimizer=torch.optim.AdamW(mb.parameters(), lr=1e-6))
        secs = median_times(fns, args.iters, device)
        auto = secs[choice.precision] if choice else secs["fp32"]
        print(f"{shape_name:15s} (dim {shape['dim_feat']}, depth {shape['depth']}, mlp {shape['mlp_ratio']}, "
              f"T {shape['clip_len']}, batch {shape['batch']}) median of {args.iters} interleaved steps: "
              + "  ".join(f"{k} {v * 1e3:.1f} ms" for k, v in secs.items()))
        line = f"    fp32/bf16 time {secs['fp32'] / secs['bf16']:.2f} (>1: bf16 faster); " + (
            f"auto -> {choice.precision}: fp32/auto {secs['fp32'] / auto:.2f}; {choice.reason}" if choice else
            "no precision: auto in this tree")
        if mb_class is not None:
            line += (f"; MotionBERT/Pose3D time: fp32 {secs['MotionBERT fp32'] / secs['fp32']:.2f}, "
                     f"auto {secs['MotionBERT fp32'] / auto:.2f}")
        print(line, flush=True)


# -- memory allocators -------------------------------------------------------------------------------
def report_step(args) -> None:
    """One JSON line: this process's allocator and the median train step of ``--shapes[0]``
    (after 2 warm-up steps), its minor page faults per step and the process's peak RSS."""
    import json

    from lib.engine.memory import allocator
    shape = (args.shapes or ["synthetic_wild"])[0]
    model, batch = shape_model(STEP_SHAPES[shape], torch.device("cpu"))
    step = train_step_fn(model, batch)
    for _ in range(2):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    seconds = [time_call(step, batch.device) for _ in range(args.iters)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    print(json.dumps({"allocator": allocator(), "shape": shape, "median_s": statistics.median(seconds),
                      "faults_per_step": faults / args.iters, "peak_rss_mb": peak_memory_mb(batch.device)}))


def report_allocator(args) -> None:
    """The train step under each installed allocator (see the module docstring), interleaved rounds."""
    import json
    import subprocess
    import sys

    from lib.engine.memory import SYSTEM, preload_names
    print(matmul_line())
    preloads = {SYSTEM: None, **preload_names()}
    print("allocators: " + ", ".join(f"{k} ({v})" if v else k for k, v in preloads.items()))
    for shape in args.shapes or ["synthetic_wild", "quickstart"]:
        runs: dict[str, list[dict]] = {name: [] for name in preloads}
        for _ in range(args.rounds):
            for name, lib in preloads.items():
                env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
                if lib:
                    env["LD_PRELOAD"] = lib
                out = subprocess.run([sys.executable, os.path.abspath(__file__), "--mode", "step", "--shapes", shape,
                                      "--iters", str(args.iters)], env=env, capture_output=True, text=True, check=True)
                result = json.loads(out.stdout.strip().splitlines()[-1])
                if result["allocator"] != name:
                    raise RuntimeError(f"asked for {name}, the process ran {result['allocator']}")
                runs[name].append(result)
        base = statistics.median(r["median_s"] for r in runs[SYSTEM])
        print(f"{shape} ({STEP_SHAPES[shape]}), {args.rounds} rounds of {args.iters} steps:")
        for name, rs in runs.items():
            t = statistics.median(r["median_s"] for r in rs)
            print(f"    {name:14s} step {t * 1e3:8.1f} ms  (system/this {base / t:.2f})  "
                  f"page faults/step {statistics.median(r['faults_per_step'] for r in rs):9.0f}  "
                  f"peak RSS {max(r['peak_rss_mb'] for r in rs):6.0f} MB", flush=True)


# -- ONNX fp32 vs int8 -------------------------------------------------------------------------------
def report_onnx(args) -> None:
    """onnxruntime time of the fp32 export and its dynamic / static int8 versions (batch 1 and 8,
    full-length clips, interleaved), with ``int8_accuracy`` (deployment/deployment_pose3d.py) of each. The
    model: ``--checkpoint`` (a trained one, with ``--config``) or the first of ``--shapes`` (random weights)."""
    import tempfile
    from deployment.deployment_pose3d import int8_accuracy
    from lib.inference.export import calibration_clips, deploy, quantize_int8, sample_input
    from lib.inference.lift import OnnxRunner
    from lib.model.factory import load_model
    if args.checkpoint:
        cfg = load_config(args.config, args.hyper_cfg)
        model, what = load_model(cfg, args.checkpoint), f"{args.checkpoint} ({args.config})"
    else:
        name = (args.shapes or ["synthetic_wild"])[0]
        model, what = shape_model(STEP_SHAPES[name], torch.device("cpu"))[0], f"{name} shape, random weights"
    model.eval()
    maxlen = model.config.maxlen
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"fp32": os.path.join(tmp, "fp32.onnx")}
        deploy(model, paths["fp32"], {"maxlen": maxlen, "rootrel": True})
        for mode in ("dynamic", "static"):
            paths[f"int8 {mode}"] = os.path.join(tmp, f"{mode}.onnx")
            quantize_int8(paths["fp32"], paths[f"int8 {mode}"], mode, calibration_clips(maxlen))
        runners = {k: OnnxRunner(p) for k, p in paths.items()}
        print(f"{what}; T {maxlen}; onnxruntime {torch.get_num_threads()} threads; median of {args.iters} interleaved calls")
        for batch in (1, 8):
            x = sample_input(batch, maxlen, seed=3)
            secs = median_times({k: (lambda r=r: r(x)) for k, r in runners.items()}, args.iters, torch.device("cpu"))
            print(f"batch {batch}: " + "  ".join(f"{k} {v * 1e3:.1f} ms (fp32/this {secs['fp32'] / v:.2f})"
                                             for k, v in secs.items()))
        for mode in ("dynamic", "static"):
            r = int8_accuracy(paths["fp32"], paths[f"int8 {mode}"], True)
            print(f"int8 {mode}: P1 fp32 {r['fp32']['p1']:.2f} -> {r['int8']['p1']:.2f} mm (change {r['p1_change_mm']:.3f}), "
                  f"P2 {r['fp32']['p2']:.2f} -> {r['int8']['p2']:.2f} mm (change {r['p2_change_mm']:.3f}), largest output "
                  f"difference {r['max_abs_diff']:.3g}, on {r['clips'][0]} synthetic test clips")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", help="training config YAML (model keys are used)")
    p.add_argument("--hyper_cfg", help="hyperedge partition YAML for version 2")
    p.add_argument("--version", type=int, choices=[1, 2], help="model version (ignored with --mode all)")
    p.add_argument("--dim_feat", type=int)
    p.add_argument("--dim_rep", type=int)
    p.add_argument("--mlp_ratio", type=float)
    p.add_argument("--depth", type=int)
    p.add_argument("--clip_len", type=int, help="frames per clip (default 81; throughput/compile: the config's clip_len)")
    p.add_argument("--batch", type=int, help="clips per batch (default 2; throughput/compile: the config's batch_size)")
    p.add_argument("--iters", type=int, default=3)
    p.add_argument("--mode", choices=["train", "forward", "all", "attention", "throughput", "compile", "matmul", "profile", "onnx", "allocator", "step"], default="all",
                   help="all = train and forward, both versions, fused and explicit; see the module docstring")
    p.add_argument("--lengths", type=int, nargs="+", default=[27, 81, 243], help="attention mode: temporal lengths")
    p.add_argument("--steps", type=int, default=10, help="throughput mode: batches per round")
    p.add_argument("--rounds", type=int, default=3, help="throughput/allocator mode: interleaved rounds")
    p.add_argument("--workers", type=int, help="throughput mode: DataLoader workers (default: the config's)")
    p.add_argument("--clip_store", choices=["pkl", "npy"], default="npy", help="throughput mode: clip store")
    p.add_argument("--compile", action="store_true", help="throughput mode: torch.compile the model (cfg.compile)")
    p.add_argument("--shapes", nargs="+", choices=list(STEP_SHAPES), help="profile/precision/allocator: shapes (default all; allocator: synthetic_wild quickstart)")
    p.add_argument("--precision", action="store_true",
                   help="CPU flags, fp32/bf16 matmul rates, step fp32/bf16/auto per --shapes (and MotionBERT's)")
    p.add_argument("--motionbert", metavar="CHECKOUT", help="precision: also time MotionBERT's DSTformer from this checkout")
    p.add_argument("--checkpoint", help="onnx mode: a trained checkpoint (with --config) instead of random weights")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.precision:
        report_precision(args)
    elif args.mode == "matmul":
        print(matmul_line(args.device))
    elif args.mode == "attention":
        report_attention(args)
    elif args.mode == "throughput":
        report_throughput(args)
    elif args.mode == "compile":
        report_compile(args)
    elif args.mode == "onnx":
        report_onnx(args)
    elif args.mode == "profile":
        report_profile(args)
    elif args.mode == "allocator":
        report_allocator(args)
    elif args.mode == "step":
        report_step(args)
    else:
        args.batch = args.batch or 2
        report(args)


if __name__ == "__main__":
    main()
