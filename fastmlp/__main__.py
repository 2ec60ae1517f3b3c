"""Command line: ``python -m fastmlp {demo,info}``."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastmlp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train fastmlp.MLPClassifier on scikit-learn's digits and compare with scikit-learn")
    p_demo.add_argument("--epochs", type=int, default=60)
    p_demo.add_argument("--seed", type=int, default=0)
    sub.add_parser("info", help="show build and run-time configuration")
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
    return 2


if __name__ == "__main__":
    sys.exit(main())
