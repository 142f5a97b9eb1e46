#!/usr/bin/env python3
"""ballast vs PyTorch: tokens/s of the full training step, same model, same step, same CPU (stdlib only;
the PyTorch side is tools/torch_model.py, run with /usr/bin/python3 and Debian's python3-torch).

For every repetition (interleaved: rep 1 of every cell, then rep 2, ...), config, policy set and thread count,
two separate processes run one after the other:
  ballast  the benchmark binary (benchmarks/bm_train_step.cpp, --bench), filtered to one
           train_step/<policy>/<config>/threads:<t> benchmark, BALLAST_BENCH_STEPS timed steps after
           BALLAST_BENCH_WARMUP untimed ones, JSON output
  torch    tools/torch_model.py run, the same warm-up and timed steps
Each process's peak RSS comes from os.wait4 on that child alone (ru_maxrss), so it is per run.

Environment of both processes (docs/performance.md, "Running PyTorch fairly"): OPENBLAS_NUM_THREADS=t, and at t > 1
OMP_WAIT_POLICY=passive for torch (its OpenMP and OpenBLAS threads otherwise spin against each other on 2
cores). On a CPU with AVX-512, torch also gets OPENBLAS_CORETYPE=SkylakeX and ATEN_CPU_CAPABILITY=avx512
(--torch-isa auto, the default): Debian's OpenBLAS 0.3.21 takes AMD Zen 4/5 for Haswell and torch 1.13 picks
AVX2 there, while ballast is compiled with -march=native. Both processes run with glibc's malloc told to
keep freed memory (GLIBC_TUNABLES, --malloc keep): PyTorch re-allocates its activations every step, and
glibc's default mmap/munmap of large blocks makes it fault them in again each step.
torch.set_num_threads(t) is called inside torch_model.py; ballast uses train_config::threads.

The table: per config, policy and threads the median ballast and torch tokens/s, the ratio ballast/torch
(median over the per-repetition pairs, and its min-max), ballast's model GFLOP/s and its fraction of the
measured FMA peak at that thread count (ballast_bm_fma_peak, --fma, or --fma-peak), and the peak RSS of each
process (median over repetitions). Model FLOPs per step: F = tokens * (6 * (12 L d^2 + d V) + 12 L T d).
The header lists both parameter counts per model (they must be equal: same model, same work).

With --diag, the diagnostics pair diag10/<policy>/<config>/diag:{none,forward} (10 steps per iteration, one
of them recording) also runs for P1 and P2, and the overhead of diagnostics is printed.

Usage:
  /usr/bin/python3 tools/compare_pytorch.py --bench build/bench/benchmarks/ballast_bm_train_step \\
      [--fma build/bench/benchmarks/ballast_bm_fma_peak | --fma-peak 90,176] [--configs P1,P2,P3[,G124]] \\
      [--policies paper_default,gpt2_like] [--threads 1,2] [--repetitions 3] [--diag] [--markdown] \\
      [--json out.json]
  /usr/bin/python3 tools/compare_pytorch.py --bench ... --check-params     # parameter counts only
  /usr/bin/python3 tools/compare_pytorch.py --bench <profiling build> --profile [--configs ...]
Exit status: 0 ok, 1 a run failed or the parameter counts differ, 2 bad arguments.
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_common import cpu_has_avx512, print_table

HERE = os.path.dirname(os.path.abspath(__file__))
TORCH_MODEL = os.path.join(HERE, "torch_model.py")
CONFIGS = ("P1", "P2", "P3", "G124")
POLICIES = ("paper_default", "gpt2_like")
# Untimed warm-up steps and timed steps per process (a P3 or G124 step takes seconds).
STEPS = {"P1": (3, 30), "P2": (2, 6), "P3": (1, 3), "G124": (1, 3)}
# Iterations of 10 steps per diagnostics-pair process.
DIAG_ITERATIONS = {"P1": 6, "P2": 2}
# Issue 7's targets: ballast/torch tokens/s ratio per config; P3 model FLOP/s >= 55% of the FMA peak.
RATIO_TARGET = {"P1": 2.0, "P2": 1.5, "P3": 1.3, "G124": 1.3}
PEAK_TARGET = 0.55
UNIT = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}


class Failure(Exception):
    pass


def fail_args(msg):
    print(f"compare_pytorch.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one clear line, exit 2
        fail_args(message)


def csv(value, allowed, what):
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        fail_args(f"--{what} is empty")
    for v in items:
        if v not in allowed:
            fail_args(f"unknown {what[:-1]} '{v}' (known: {', '.join(allowed)})")
    return list(dict.fromkeys(items))


def run_child(cmd, env):
    """Run cmd to completion; returns (stdout, stderr, peak RSS in MiB) of that process alone."""
    full_env = dict(os.environ)
    for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE",
              "ATEN_CPU_CAPABILITY", "OPENBLAS_L2_SIZE", "GLIBC_TUNABLES"):
        full_env.pop(k, None)
    if MALLOC_KEEP:
        full_env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    full_env.update(env)
    # Output goes to temporary files, not pipes: the child is reaped here with os.wait4, which returns
    # that child's own rusage (ru_maxrss in KiB on Linux); Popen.communicate would reap it first.
    with tempfile.TemporaryFile("w+") as fo, tempfile.TemporaryFile("w+") as fe:
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=full_env, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read(), fe.read()
    if p.returncode != 0:
        raise Failure(f"{' '.join(cmd)} exited with {p.returncode}: {err.strip()[-500:]}")
    return out, err, usage.ru_maxrss / 1024.0


def gb_json(text):
    # The driver prints a one-line banner before the JSON document.
    return json.loads(text[text.index("{"):])


def run_ballast(bench, name, threads, warmup, steps):
    env = {"OPENBLAS_NUM_THREADS": str(threads), "BALLAST_BENCH_STEPS": str(steps),
           "BALLAST_BENCH_WARMUP": str(warmup)}
    cmd = [bench, "--benchmark_format=json", f"--benchmark_filter=^{re.escape(name)}(/|$)"]
    out, _, rss = run_child(cmd, env)
    rows = [b for b in gb_json(out)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
    if len(rows) != 1:
        raise Failure(f"{name}: expected one benchmark row, got {len(rows)}")
    b = rows[0]
    if b.get("error_occurred"):
        raise Failure(f"{name}: {b.get('error_message')}")
    return {"tokens_per_s": b["tokens_per_s"], "gflops": b["GFLOPS"], "params": int(b["params"]),
            "step_s": b["real_time"] * UNIT[b.get("time_unit", "ns")], "loss": b.get("loss"),
            "iterations": b["iterations"], "rss_mib": rss,
            "first_step_ms": b.get("ms_first_step"), "other_steps_ms": b.get("ms_other_steps")}


# glibc malloc that never returns memory to the kernel: no mmap per large block, no heap trimming. PyTorch
# frees and re-allocates its activations every step; by default glibc serves every block over 32 MiB (and
# many smaller ones) with a fresh mmap and unmaps it on free, so each step faults in its activations page by
# page again, which on this VM made torch's G124 step 2-4x slower (6.4-12.9 s against 3.0-3.2 s). ballast
# allocates once, so it does not care; both processes get the same setting (--malloc).
MALLOC_TUNABLES = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736"
MALLOC_KEEP = True  # --malloc keep; set once in main()

def torch_isa_env(mode):
    """The environment that gives PyTorch its fastest kernels on this CPU. Debian's OpenBLAS 0.3.21
    (DYNAMIC_ARCH) does not know AMD Zen 4/5 and falls back to its AVX2 Haswell kernels, and torch 1.13's
    ATen picks AVX2 on AMD; on an AVX-512 CPU both are told to use their AVX-512 code paths
    (OPENBLAS_CORETYPE=SkylakeX, ATEN_CPU_CAPABILITY=avx512), as ballast's -march=native build does."""
    if mode == "avx2" or (mode == "auto" and not cpu_has_avx512()):
        return {}
    return {"OPENBLAS_CORETYPE": "SkylakeX", "ATEN_CPU_CAPABILITY": "avx512"}


def run_torch(python, config, policy, threads, warmup, steps, foreach, isa="auto"):
    env = {"OPENBLAS_NUM_THREADS": str(threads), **torch_isa_env(isa)}
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "passive"
    cmd = [python, TORCH_MODEL, "run", "--config", config, "--policy", policy, "--threads", str(threads),
           "--warmup", str(warmup), "--steps", str(steps), "--foreach", str(int(foreach))]
    out, _, rss = run_child(cmd, env)
    r = json.loads(out.strip().splitlines()[-1])
    r["rss_mib"] = rss
    return r


def fma_peak(fma):
    """threads -> median float FMA peak GFLOP/s (three repetitions, one process)."""
    cmd = [fma, "--benchmark_format=json", "--benchmark_filter=float", "--benchmark_repetitions=3"]
    out, _, _ = run_child(cmd, {})
    reps = {}
    for b in gb_json(out)["benchmarks"]:
        m = re.match(r"^bm_fma_peak<float>/threads:(\d+)", b["name"])
        if m and b.get("run_type") != "aggregate":
            reps.setdefault(int(m[1]), []).append(b["GFLOPS"])
    return {t: statistics.median(v) for t, v in reps.items()}


def ballast_params(bench):
    out, _, _ = run_child([bench, "--benchmark_format=json", "--benchmark_filter=^params/"], {})
    res = {}
    for b in gb_json(out)["benchmarks"]:
        m = re.match(r"^params/(\w+)/(\w+)", b["name"])
        if m:
            res[(m[2], m[1])] = int(b["params"])
    return res


def torch_params(python, configs, policies):
    out, _, _ = run_child([python, TORCH_MODEL, "params", "--config", ",".join(configs),
                           "--policy", ",".join(policies)], {})
    res = {}
    for line in out.splitlines():
        r = json.loads(line)
        res[(r["config"], r["policy"])] = r["params"]
    return res


def spread(values, fmt):
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def main():
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of ballast_bm_train_step")
    ap.add_argument("--fma", help="path of ballast_bm_fma_peak (measures the FMA peak)")
    ap.add_argument("--fma-peak", help="FMA peak GFLOP/s per thread count instead of measuring: '90,176' "
                                       "(1 thread, 2 threads)")
    ap.add_argument("--configs", default="P1,P2,P3", help="comma list of P1,P2,P3,G124 (G124 is slow: "
                                                          "~3 GB per process, seconds per step)")
    ap.add_argument("--policies", default="paper_default,gpt2_like")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--repetitions", type=int, default=3)
    ap.add_argument("--steps", type=int, help="timed steps per process (default per config: "
                                              + ", ".join(f"{k} {v[1]}" for k, v in STEPS.items()) + ")")
    ap.add_argument("--warmup", type=int, help="untimed warm-up steps per process (default per config: "
                                               + ", ".join(f"{k} {v[0]}" for k, v in STEPS.items()) + ")")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch (Debian's)")
    ap.add_argument("--torch-foreach", type=int, choices=(0, 1), default=1,
                    help="torch AdamW foreach=True (1, default: the faster here) or the per-tensor loop (0)")
    ap.add_argument("--torch-isa", choices=("auto", "avx512", "avx2"), default="auto",
                    help="PyTorch's kernels: auto = its AVX-512 paths (OpenBLAS SkylakeX, ATen avx512) when the "
                         "CPU has AVX-512, else its defaults; avx2 = the defaults (Debian's OpenBLAS picks "
                         "Haswell on AMD Zen 4/5)")
    ap.add_argument("--malloc", choices=("keep", "default"), default="keep",
                    help="keep = both processes run with GLIBC_TUNABLES=" + MALLOC_TUNABLES + " (glibc keeps "
                         "freed memory instead of unmapping it: PyTorch's per-step activations stop page-"
                         "faulting); default = glibc's defaults")
    ap.add_argument("--diag", action="store_true", help="also measure the diagnostics overhead (P1, P2)")
    ap.add_argument("--check-params", action="store_true", help="only compare the parameter counts")
    ap.add_argument("--profile", action="store_true",
                    help="only print where ballast's step time goes per layer family: --bench must be a "
                         "profiling build (-DBALLAST_BENCH_PROFILE, docs/performance.md)")
    ap.add_argument("--busy", type=int, default=0,
                    help="start this many busy-loop processes for the whole measurement (a shared machine: "
                         "ballast and torch measured side by side under the same load); stopped by pid at the end")
    ap.add_argument("--markdown", action="store_true")
    ap.add_argument("--json", help="write every measurement and the summary here")
    args = ap.parse_args()
    global MALLOC_KEEP
    MALLOC_KEEP = args.malloc == "keep"

    configs = csv(args.configs, CONFIGS, "configs")
    policies = csv(args.policies, POLICIES, "policies")
    try:
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        fail_args(f"--threads must be a comma list of positive integers, got '{args.threads}'")
    if not threads or min(threads) < 1:
        fail_args(f"--threads must be a comma list of positive integers, got '{args.threads}'")
    if args.repetitions < 1:
        fail_args(f"--repetitions must be >= 1, got {args.repetitions}")
    if args.busy < 0 or args.busy > 64:
        fail_args(f"--busy must be in [0, 64], got {args.busy}")
    if args.steps is not None and args.steps < 1:
        fail_args(f"--steps must be >= 1, got {args.steps}")
    if args.warmup is not None and args.warmup < 0:
        fail_args(f"--warmup must be >= 0, got {args.warmup}")
    for what, path in (("--bench", args.bench), ("--fma", args.fma), ("--python", args.python)):
        if path and not (os.path.isfile(path) and os.access(path, os.X_OK)):
            fail_args(f"{what} '{path}' is not an executable file")
    peak = {}
    if args.fma_peak:
        try:
            vals = [float(x) for x in args.fma_peak.split(",")]
        except ValueError:
            fail_args(f"--fma-peak must be GFLOP/s per thread count like '90,176', got '{args.fma_peak}'")
        if not vals or min(vals) <= 0:
            fail_args(f"--fma-peak values must be > 0, got '{args.fma_peak}'")
        peak = {i + 1: v for i, v in enumerate(vals)}

    hogs = start_busy(args.busy)
    try:
        if args.profile:
            return profile(args, configs, policies, threads)
        return compare(args, configs, policies, threads, peak)
    except Failure as e:
        print(f"compare_pytorch.py: {e}", file=sys.stderr)
        return 1
    finally:
        stop_busy(hogs)


def start_busy(k):
    """K busy-loop processes (pids recorded), each in its own session so that a signal to ours spares them
    until stop_busy kills them by pid."""
    hogs = []
    for _ in range(k):
        hogs.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
    if hogs:
        print(f"load: {k} busy process(es), pids {' '.join(str(h.pid) for h in hogs)}", file=sys.stderr)
        time.sleep(0.5)  # let them be scheduled before the first measurement
    return hogs


def stop_busy(hogs):
    for h in hogs:
        try:
            os.kill(h.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for h in hogs:
        try:
            h.wait(timeout=10)
        except subprocess.TimeoutExpired:
            print(f"compare_pytorch.py: busy process {h.pid} did not stop", file=sys.stderr)


FAMILIES = [  # (counter suffix, label) in step order
    ("embed", "embedding (gather, scatter-add)"), ("norm", "block and final norms"),
    ("attn.proj", "attention projections (qkv, out GEMMs)"), ("attn.qk_rope", "qk-norm + RoPE"),
    ("attn.core", "attention core (q·kᵀ, softmax, P·v)"), ("mlp.gemm", "MLP GEMMs (up, down)"),
    ("mlp.gelu", "GELU"), ("head", "head GEMMs"), ("loss", "loss (cross-entropy, z-loss)"),
    ("residual", "residual adds (backward)"), ("grad_zero", "zeroing accumulated gradients"),
    ("optimizer", "AdamW update"), ("trainer_rest", "trainer: batch, grad norm, checks"),
]


def profile(args, configs, policies, threads):
    """Run profile/<policy>/<config>/threads:<t> of a profiling build; one table per benchmark, one column
    per thread count: ms per step and share of the step per family (median over --repetitions processes)."""
    for c in configs:
        for p in policies:
            cols = {}
            for t in threads:
                warmup = STEPS[c][0] if args.warmup is None else args.warmup
                steps = STEPS[c][1] if args.steps is None else args.steps
                name = f"profile/{p}/{c}/threads:{t}"
                env = {"OPENBLAS_NUM_THREADS": str(t), "BALLAST_BENCH_STEPS": str(steps),
                       "BALLAST_BENCH_WARMUP": str(warmup)}
                reps = []
                for _ in range(args.repetitions):
                    out, _, _ = run_child([args.bench, "--benchmark_format=json",
                                           f"--benchmark_filter=^{re.escape(name)}(/|$)"], env)
                    rows = [b for b in gb_json(out)["benchmarks"] if b.get("run_type", "iteration") == "iteration"]
                    if len(rows) != 1 or "ms_step" not in rows[0]:
                        raise Failure(f"{name}: not found: is --bench a profiling build (-DBALLAST_BENCH_PROFILE)?")
                    reps.append(rows[0])
                cols[t] = {k: statistics.median(r.get(f"ms_{k}", 0.0) for r in reps)
                           for k in [f for f, _ in FAMILIES] + ["step"]}
            print(f"\n{c} {p}: ms per step (share of the step), median of {args.repetitions} process(es)")
            hdr = ["family"] + [f"{t} thread(s)" for t in threads]
            rows = []
            for key, label in FAMILIES:
                rows.append([label] + [f"{cols[t][key]:.2f} ({100 * cols[t][key] / cols[t]['step']:.1f}%)"
                                       for t in threads])
            rows.append(["step"] + [f"{cols[t]['step']:.2f}" for t in threads])
            print_table(hdr, rows, args.markdown)
    return 0


def compare(args, configs, policies, threads, peak):
    load_before = os.getloadavg()
    bp = ballast_params(args.bench)
    tp = torch_params(args.python, configs, policies)
    mismatch = False
    sys.stdout.reconfigure(line_buffering=True)  # the tables appear as they are printed, even in a file
    print("parameters (ballast layout().count() vs torch sum(numel)):")
    for c in configs:
        for p in policies:
            b, t = bp.get((c, p)), tp.get((c, p))
            ok = b == t
            mismatch |= not ok
            print(f"  {c:5s} {p:14s} ballast {b:>12,}  torch {t:>12,}  {'same' if ok else 'DIFFERENT'}")
    if args.check_params:
        return 1 if mismatch else 0

    if args.fma and not peak:
        peak = fma_peak(args.fma)
    print("malloc: " + (f"GLIBC_TUNABLES={MALLOC_TUNABLES} (both)" if MALLOC_KEEP else "glibc defaults"))
    isa_env = torch_isa_env(args.torch_isa)
    print("torch kernels: " + (" ".join(f"{k}={v}" for k, v in isa_env.items()) if isa_env
                               else "defaults (no AVX-512 override)"))

    cells = [(c, p, t) for c in configs for p in policies for t in threads]
    runs = {cell: {"ballast": [], "torch": []} for cell in cells}
    diag_cells = [(c, p, t) for c in configs if c in ("P1", "P2") for p in policies for t in threads] \
        if args.diag else []
    diag = {cell: {"none": [], "forward": []} for cell in diag_cells}
    t_start = time.time()

    def save_partial():
        # Every measurement is saved as it arrives: a run stopped midway keeps what it measured.
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"partial": True, "busy": args.busy, "load_before": load_before, "fma_peak": peak,
                           "torch_env": isa_env,
                           "malloc": args.malloc,
                           "runs": [{"config": c, "policy": p, "threads": t, **v} for (c, p, t), v in runs.items()],
                           "diag_runs": [{"config": c, "policy": p, "threads": t, **v}
                                         for (c, p, t), v in diag.items()]}, f, indent=1)

    for rep in range(args.repetitions):
        for (c, p, t) in cells:
            warmup = STEPS[c][0] if args.warmup is None else args.warmup
            steps = STEPS[c][1] if args.steps is None else args.steps
            order = ("ballast", "torch") if rep % 2 == 0 else ("torch", "ballast")
            for impl in order:
                if impl == "ballast":
                    r = run_ballast(args.bench, f"train_step/{p}/{c}/threads:{t}", t, warmup, steps)
                else:
                    r = run_torch(args.python, c, p, t, warmup, steps, args.torch_foreach, args.torch_isa)
                runs[(c, p, t)][impl].append(r)
                save_partial()
                print(f"[rep {rep + 1}/{args.repetitions}] {c} {p} threads {t} {impl:7s} "
                      f"{r['tokens_per_s']:10.0f} tok/s  peak RSS {r['rss_mib']:7.0f} MiB  "
                      f"({time.time() - t_start:.0f} s)", file=sys.stderr, flush=True)
        for (c, p, t) in diag_cells:
            kinds = ("none", "forward") if rep % 2 == 0 else ("forward", "none")
            for kind in kinds:
                r = run_ballast(args.bench, f"diag10/{p}/{c}/diag:{kind}/threads:{t}", t, 0,
                                DIAG_ITERATIONS[c])
                diag[(c, p, t)][kind].append(r)
                save_partial()
                print(f"[rep {rep + 1}/{args.repetitions}] diag10 {c} {p} threads {t} {kind:7s} "
                      f"{r['step_s'] * 1e3:8.1f} ms per 10 steps", file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    summary = []
    for (c, p, t) in cells:
        bs, ts = runs[(c, p, t)]["ballast"], runs[(c, p, t)]["torch"]
        ratios = [b["tokens_per_s"] / x["tokens_per_s"] for b, x in zip(bs, ts)]
        gf = statistics.median(b["gflops"] for b in bs)
        s = {"config": c, "policy": p, "threads": t,
             "ballast_tokens_per_s": statistics.median(b["tokens_per_s"] for b in bs),
             "torch_tokens_per_s": statistics.median(x["tokens_per_s"] for x in ts),
             "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
             "ballast_gflops": gf, "fma_peak_gflops": peak.get(t),
             "peak_fraction": gf / peak[t] if t in peak else None,
             "ballast_rss_mib": statistics.median(b["rss_mib"] for b in bs),
             "torch_rss_mib": statistics.median(x["rss_mib"] for x in ts),
             "ballast_params": bs[0]["params"], "torch_params": ts[0]["params"]}
        mismatch |= s["ballast_params"] != s["torch_params"]
        summary.append(s)

    print()
    if args.busy:
        print(f"under load: {args.busy} busy-loop process(es) ran for the whole measurement")
    print(f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}, after "
          f"{load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f} ({os.cpu_count()} CPUs); "
          f"{args.repetitions} repetition(s), interleaved, each a separate process")
    if peak:
        print("FMA peak (float): " + ", ".join(f"{peak[t]:.1f} GFLOP/s at {t} thread(s)" for t in sorted(peak)))
    hdr = ["config", "policy", "thr", "ballast tok/s", "torch tok/s", "ratio", "ratio min–max",
           "ballast GFLOP/s", "% FMA peak", "ballast RSS MiB", "torch RSS MiB"]
    rows = []
    for s in summary:
        rows.append([s["config"], s["policy"], str(s["threads"]), f"{s['ballast_tokens_per_s']:,.0f}",
                     f"{s['torch_tokens_per_s']:,.0f}", f"{s['ratio_median']:.2f}",
                     f"{s['ratio_min']:.2f}–{s['ratio_max']:.2f}", f"{s['ballast_gflops']:.1f}",
                     f"{100 * s['peak_fraction']:.0f}%" if s["peak_fraction"] else "-",
                     f"{s['ballast_rss_mib']:.0f}", f"{s['torch_rss_mib']:.0f}"])
    print_table(hdr, rows, args.markdown)

    diag_summary = []
    if diag_cells:
        print()
        # Two estimates of the overhead of diagnostics::forward at diag_interval 10:
        #   between processes: (10 steps with diagnostics) / (10 steps without) - 1, per repetition pair
        #   within a process:  (recorded step - other steps) / (10 x other steps), from the per-step medians
        #                      of the diagnostics process (the none process gives the same figure as a control:
        #                      it should be ~0)
        hdr = ["config", "policy", "thr", "10 steps none (ms)", "10 steps forward (ms)", "overhead (processes)",
               "min–max", "recorded step (ms)", "other steps (ms)", "other steps, none (ms)",
               "overhead (in process)", "control (none)"]
        rows = []
        for (c, p, t) in diag_cells:
            n, f = diag[(c, p, t)]["none"], diag[(c, p, t)]["forward"]
            over = [b["step_s"] / a["step_s"] - 1 for a, b in zip(n, f)]
            inproc = [(x["first_step_ms"] - x["other_steps_ms"]) / (10 * x["other_steps_ms"]) for x in f]
            control = [(x["first_step_ms"] - x["other_steps_ms"]) / (10 * x["other_steps_ms"]) for x in n]
            d = {"config": c, "policy": p, "threads": t,
                 "none_s": statistics.median(a["step_s"] for a in n),
                 "forward_s": statistics.median(b["step_s"] for b in f),
                 "overhead_median": statistics.median(over), "overhead_min": min(over), "overhead_max": max(over),
                 "recorded_step_ms": statistics.median(x["first_step_ms"] for x in f),
                 "other_steps_ms": statistics.median(x["other_steps_ms"] for x in f),
                 "other_steps_none_ms": statistics.median(x["other_steps_ms"] for x in n),
                 "overhead_in_process": statistics.median(inproc), "control_in_process": statistics.median(control)}
            diag_summary.append(d)
            rows.append([c, p, str(t), f"{1e3 * d['none_s']:.1f}", f"{1e3 * d['forward_s']:.1f}",
                         f"{100 * d['overhead_median']:+.1f}%",
                         f"{100 * d['overhead_min']:+.1f}%…{100 * d['overhead_max']:+.1f}%",
                         f"{d['recorded_step_ms']:.2f}", f"{d['other_steps_ms']:.2f}",
                         f"{d['other_steps_none_ms']:.2f}",
                         f"{100 * d['overhead_in_process']:+.2f}%", f"{100 * d['control_in_process']:+.2f}%"])
        print_table(hdr, rows, args.markdown)

    print()
    print("targets (issue 7):")
    for s in summary:
        goal = RATIO_TARGET[s["config"]]
        verdict = "met" if s["ratio_median"] >= goal else "MISSED"
        mem = "met" if s["ballast_rss_mib"] <= s["torch_rss_mib"] else "MISSED"
        print(f"  {s['config']:5s} {s['policy']:14s} {s['threads']} thr: ratio {s['ratio_median']:.2f} "
              f">= {goal} {verdict}; peak memory {s['ballast_rss_mib']:.0f} <= {s['torch_rss_mib']:.0f} MiB {mem}")
        if s["config"] == "P3" and s["peak_fraction"]:
            v = "met" if s["peak_fraction"] >= PEAK_TARGET else "MISSED"
            print(f"  {'':5s} {'':14s} {'':5s} P3 model FLOP/s {100 * s['peak_fraction']:.0f}% of the FMA "
                  f"peak >= {100 * PEAK_TARGET:.0f}% {v}")
    for d in diag_summary:
        # The verdict uses the in-process estimate: the between-process one carries the host's noise (its
        # min-max spans tens of percent on a shared 2-core VM), and is printed beside it.
        v = "met" if d["overhead_in_process"] <= 0.05 else "MISSED"
        print(f"  {d['config']:5s} {d['policy']:14s} {d['threads']} thr: diagnostics overhead "
              f"{100 * d['overhead_in_process']:+.2f}% (in process) <= 5% {v}; between processes "
              f"{100 * d['overhead_median']:+.1f}% ({100 * d['overhead_min']:+.1f}%…{100 * d['overhead_max']:+.1f}%)")
    if mismatch:
        print("PARAMETER COUNTS DIFFER: the two sides do not run the same model", file=sys.stderr)

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"busy": args.busy, "load_before": load_before, "load_after": load_after, "fma_peak": peak,
                       "torch_env": isa_env, "malloc": args.malloc,
                       "summary": summary, "diagnostics": diag_summary,
                       "runs": [{"config": c, "policy": p, "threads": t, **v}
                                for (c, p, t), v in runs.items()],
                       "diag_runs": [{"config": c, "policy": p, "threads": t, **v}
                                     for (c, p, t), v in diag.items()]}, f, indent=1)
    return 1 if mismatch else 0


if __name__ == "__main__":
    sys.exit(main())
