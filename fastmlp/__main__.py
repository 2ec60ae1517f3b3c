"""Command line: ``python -m fastmlp {demo,info,bench}``."""
import argparse
import os
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train fastmlp.MLPClassifier on scikit-learn's digits and compare with scikit-learn")
    p_demo.add_argument("--epochs", type=int, default=60)
    p_demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="show build and run-time configuration")
    p_bench = sub.add_parser(
        "bench", help="time one training epoch: fastmlp vs a NumPy reference, scikit-learn "
                      "and PyTorch (when installed), side by side",
        description="One epoch of MLPClassifier(hidden_layer_sizes=(256, 128), solver='sgd', "
                    "batch_size=128) on 60000 x 784 synthetic data (see fastmlp/_bench.py).")
    p_bench.add_argument("--threads", default=None,
                         help="comma-separated thread counts (default: 1 and all cores)")
    p_bench.add_argument("--quick", action="store_true",
                         help="6000 samples and fewer repeats")
    p_bench.add_argument("--plot", metavar="OUT.png", default=None,
                         help="write a bar chart with the peak drawn as a line (needs matplotlib)")
    p_bench.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p_bench.add_argument("--peak", type=float, default=None, metavar="GFLOPS",
                         help="FMA peak of ONE core in GFLOP/s for --dtype (default: measured "
                              "with an FMA probe of the CPU's widest ISA)")
    p_bench.add_argument("--samples", type=int, default=None,
                         help="number of training samples (default 60000; --quick 6000)")
    p_bench.add_argument("--repeats", type=int, default=None,
                         help="timed epochs per configuration, best reported (default 3; --quick 2)")
    args = parser.parse_args(argv)

    if args.command == "info":
        from fastmlp import show_config
        show_config()
        return 0
    if args.command == "demo":
        from fastmlp._demo import run_demo
        if args.epochs < 1:
            parser.error("--epochs must be >= 1")
        if not 0 <= args.seed < 2**32:
            parser.error("--seed must be in [0, 2**32 - 1]")
        run_demo(epochs=args.epochs, seed=args.seed)
        return 0
    if args.command == "bench":
        from fastmlp import _bench
        try:
            threads = [int(t) for t in (args.threads or "").split(",") if t.strip()]
        except ValueError:
            parser.error(f"--threads must be comma-separated integers, got {args.threads!r}")
        if args.threads is None:
            threads = sorted({1, os.cpu_count() or 1})
        if not threads or min(threads) < 1:
            parser.error(f"--threads must be integers >= 1, got {args.threads!r}")
        if args.samples is not None and args.samples < _bench.MIN_SAMPLES:
            parser.error(f"--samples must be >= {_bench.MIN_SAMPLES}")
        if args.repeats is not None and args.repeats < 1:
            parser.error("--repeats must be >= 1")
        if args.peak is not None and not args.peak > 0:
            parser.error("--peak must be > 0")
        if args.plot and not _bench.matplotlib_available():
            parser.error("--plot needs matplotlib, which is not installed "
                         "(pip install matplotlib)")
        _bench.run_bench(threads=threads, quick=args.quick, samples=args.samples,
                         repeats=args.repeats, dtype=args.dtype, peak=args.peak, plot=args.plot)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
