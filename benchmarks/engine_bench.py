"""Speed of the stacked torch engine against the plain single-model loop, measured in one run.

Workload: the report's Q2(ii) trial, CharRNN hidden 5 on "edgement" (T = 7, V = 6), RMSprop, M
members with mixed learning rates, for each cell (nn.RNN, nn.GRU, nn.LSTM). For each cell, dtype
and M it prints
  epoch     µs per member-epoch in steady state (best of several timed blocks: the machine is shared),
            wall clock and CPU time of all threads
  trial     µs per member-epoch of a whole trial, engine construction + 100 epochs (best of 3)
  peak MiB  the process's peak resident memory above the baseline after imports
  vs rnn    the cell's epoch figure over the stacked nn.RNN's at the same dtype and M (from the
            rows above, each measured in its own process at its own time)
and the plain loop (build + torch.optim.RMSprop + CrossEntropyLoss, one member) as the reference,
with the speed-up ratio (wall clock, steady state) of the engine over it. For the gated cells a
`torch.func` row (vmap(grad(functional_call(nn.GRU/nn.LSTM model)))) gives the other way to
stack them, for the gradient alone, without the optimizer step. Each configuration runs in a
fresh subprocess so that peak memory is its own. Then, for each dtype and M >= 256, the three
cells' stacked engines side by side in one process, timing blocks taken in turn (best block of
each), which is the steadier ratio on a shared machine.

    python benchmarks/engine_bench.py [--cells rnn gru lstm] [--sizes 1 16 256 1024 4096]
                                      [--dtypes float64 float32] [--func-sizes 256 1024]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WORD, HIDDEN, EPOCHS = "edgement", 5, 100
MODELS = {"rnn": "torch_rnn", "gru": "torch_gru", "lstm": "torch_lstm"}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def best_seconds(fn, repeats: int, blocks: int = 15) -> tuple[float, float]:
    """Wall and CPU seconds of one call in the fastest of `blocks` blocks of `repeats` calls each.
    CPU time (all threads) is the steadier figure while other processes share the cores."""
    best = (float("inf"), float("inf"))
    for _ in range(blocks):
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(repeats):
            fn()
        best = min(best, ((time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats))
    return best


def workload(members: int, dtype: str, cell: str):
    """The stacked engine's group and its M members (RMSprop with mixed learning rates)."""
    from rnnexp.data import make_example
    from rnnexp.engine import GroupSpec, MemberSpec

    example = make_example(WORD)
    group = GroupSpec(model=MODELS[cell], vocab_size=len(example.vocab),
                      inputs=tuple(example.inputs.tolist()), targets=tuple(example.targets.tolist()),
                      hidden_size=HIDDEN, bias=True, dtype=dtype)
    specs = [MemberSpec(seed, dict(lr=0.4 / (1 + seed % 8), alpha=0.5, eps=1e-18), "rmsprop")
             for seed in range(members)]
    return group, specs


def measure_stacked(members: int, dtype: str, cell: str) -> dict:
    from rnnexp.engine.torch_stack import TorchStackEngine

    group, specs = workload(members, dtype, cell)
    base = peak_rss_mib()

    def trial():
        engine = TorchStackEngine(group, specs)
        for _ in range(EPOCHS):
            engine.step()
        return engine

    engine = trial()  # warm-up, and the engine whose steady-state epochs are timed below
    trial_time, _ = best_seconds(trial, repeats=1, blocks=3)
    epoch, epoch_cpu = best_seconds(engine.step, repeats=max(1, min(20, 4096 // members)))
    return {"epoch_us": epoch / members * 1e6, "epoch_cpu_us": epoch_cpu / members * 1e6,
            "trial_us": trial_time / (members * EPOCHS) * 1e6,
            "peak_mib": peak_rss_mib() - base}


def measure_side_by_side(members: int, dtype: str, blocks: int = 25) -> dict:
    """µs per member-epoch of every cell's stacked engine at M members, the cells' timing blocks
    taken in turn (best block of each), so that load changes touch every cell alike."""
    from rnnexp.engine.torch_stack import TorchStackEngine

    engines = {}
    for cell in MODELS:
        engines[cell] = TorchStackEngine(*workload(members, dtype, cell))
        for _ in range(EPOCHS):  # a trial's worth of epochs first, as in a study
            engines[cell].step()
    repeats = max(1, min(20, 4096 // members))
    best = dict.fromkeys(engines, float("inf"))
    for _ in range(blocks):
        for cell, engine in engines.items():
            start = time.perf_counter()
            for _ in range(repeats):
                engine.step()
            best[cell] = min(best[cell], (time.perf_counter() - start) / repeats / members * 1e6)
    return best


def measure_plain(dtype: str, cell: str) -> dict:
    import torch
    from torch import nn

    from rnnexp.data import make_example
    from rnnexp.models.torch_rnn import build

    example = make_example(WORD)
    inputs, targets = torch.tensor(example.inputs), torch.tensor(example.targets)
    criterion = nn.CrossEntropyLoss()

    def trial():
        model = build(len(example.vocab), HIDDEN, seed=0, dtype=dtype, cell=cell)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=0.4, alpha=0.5, eps=1e-18)

        def epoch():
            optimizer.zero_grad()
            loss = criterion(model(inputs), targets)
            loss.backward()
            optimizer.step()
            return loss.item()
        return epoch

    def whole_trial():
        epoch = trial()
        for _ in range(EPOCHS):
            epoch()
        return epoch

    base = peak_rss_mib()
    epoch = whole_trial()  # warm-up
    trial_time, _ = best_seconds(whole_trial, repeats=1, blocks=3)
    wall, cpu = best_seconds(epoch, repeats=20)
    return {"epoch_us": wall * 1e6, "epoch_cpu_us": cpu * 1e6, "trial_us": trial_time / EPOCHS * 1e6,
            "peak_mib": peak_rss_mib() - base}


def measure_func(members: int, dtype: str, cell: str) -> dict:
    """torch.func over the nn module: vmap(grad(loss of functional_call)) on stacked parameters,
    the gradient of every member; no optimizer step."""
    import torch
    from torch.func import functional_call, grad, stack_module_state, vmap

    from rnnexp.data import make_example
    from rnnexp.models.torch_rnn import build

    example = make_example(WORD)
    inputs, targets = torch.tensor(example.inputs), torch.tensor(example.targets)
    models = [build(len(example.vocab), HIDDEN, seed=s, dtype=dtype, cell=cell) for s in range(members)]
    params, _ = stack_module_state(models)
    base = peak_rss_mib()

    def loss(p):
        return torch.nn.functional.cross_entropy(functional_call(models[0], p, (inputs,)), targets)

    gradients = vmap(grad(loss))
    gradients(params)  # warm-up
    wall, cpu = best_seconds(lambda: gradients(params), repeats=1, blocks=5)
    return {"epoch_us": wall / members * 1e6, "epoch_cpu_us": cpu / members * 1e6,
            "trial_us": float("nan"), "peak_mib": peak_rss_mib() - base}


def run_one(kind: str, members: int, dtype: str, cell: str, threads: int) -> dict:
    """Runs one measurement in a fresh interpreter and returns its figures."""
    command = [sys.executable, __file__, "--one", kind, str(members), dtype, cell,
               "--threads", str(threads)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                      os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 256, 1024, 4096])
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    parser.add_argument("--func-sizes", type=int, nargs="*", default=[256, 1024],
                        help="M of the torch.func rows of the gated cells (none: skip them)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="torch threads (default: the CPUs this process may use)")
    parser.add_argument("--one", nargs=4, metavar=("KIND", "M", "DTYPE", "CELL"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    if args.one:
        kind, members, dtype, cell = args.one
        if kind == "side":
            print(json.dumps(measure_side_by_side(int(members), dtype)))
            return
        measure = {"plain": measure_plain, "stacked": measure_stacked, "func": measure_func}[kind]
        result = measure(dtype, cell) if kind == "plain" else measure(int(members), dtype, cell)
        print(json.dumps(result))
        return

    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.2f}")
    print(f"workload: hidden {HIDDEN}, {WORD!r}, RMSprop, {EPOCHS}-epoch trials\n")
    print(f"{'':30} {'µs per member-epoch':^34}")
    print(f"{'cell':5} {'dtype':8} {'engine':10} {'M':>5} {'epoch':>10} {'epoch CPU':>10} {'trial':>12} "
          f"{'speed-up':>9} {'vs rnn':>7} {'peak MiB':>9}")
    rnn_epoch = {}  # (dtype, M) -> the stacked nn.RNN's epoch figure
    cells = sorted(args.cells, key=lambda c: c != "rnn")  # nn.RNN first: the others' reference
    for cell in cells:
        for dtype in args.dtypes:
            plain = run_one("plain", 1, dtype, cell, args.threads)
            print(f"{cell:5} {dtype:8} {'plain loop':10} {1:5d} {plain['epoch_us']:10.1f} "
                  f"{plain['epoch_cpu_us']:10.1f} {plain['trial_us']:12.1f} {1.0:9.1f} {'':>7} "
                  f"{plain['peak_mib']:9.1f}")
            for members in args.sizes:
                r = run_one("stacked", members, dtype, cell, args.threads)
                if cell == "rnn":
                    rnn_epoch[dtype, members] = r["epoch_us"]
                ref = rnn_epoch.get((dtype, members))
                vs = f"{r['epoch_us'] / ref:7.2f}" if ref and cell != "rnn" else f"{'':>7}"
                print(f"{cell:5} {dtype:8} {'stacked':10} {members:5d} {r['epoch_us']:10.2f} "
                      f"{r['epoch_cpu_us']:10.2f} {r['trial_us']:12.2f} "
                      f"{plain['epoch_us'] / r['epoch_us']:9.1f} {vs} {r['peak_mib']:9.1f}", flush=True)
            for members in (args.func_sizes if cell != "rnn" else []):
                r = run_one("func", members, dtype, cell, args.threads)
                print(f"{cell:5} {dtype:8} {'torch.func':10} {members:5d} {r['epoch_us']:10.2f} "
                      f"{r['epoch_cpu_us']:10.2f} {'(gradient)':>12} "
                      f"{plain['epoch_us'] / r['epoch_us']:9.1f} {'':>7} {r['peak_mib']:9.1f}", flush=True)
    if len(cells) > 1 and "rnn" in cells:
        print(f"\nside by side in one process, µs per member-epoch (steady state, best of 25 blocks "
              f"taken in turn):")
        print(f"{'dtype':8} {'M':>5} " + " ".join(f"{c:>8}" for c in cells) + " "
              + " ".join(f"{c + '/rnn':>9}" for c in cells if c != "rnn"))
        for dtype in args.dtypes:
            for members in [m for m in args.sizes if m >= 256]:
                r = run_one("side", members, dtype, "all", args.threads)
                print(f"{dtype:8} {members:5d} " + " ".join(f"{r[c]:8.2f}" for c in cells) + " "
                      + " ".join(f"{r[c] / r['rnn']:9.2f}" for c in cells if c != "rnn"), flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f} (timings on a shared machine vary with it)")


if __name__ == "__main__":
    main()
