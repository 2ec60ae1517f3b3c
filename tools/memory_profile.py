"""Peak memory of fitting an MLPClassifier, against the size of its data.

Usage: python tools/memory_profile.py [--samples 60000] [--features 784]
       [--hidden 256,128] [--solver sgd] [--batch-size 128] [--max-iter 1] [--sklearn]

Each measurement runs in a FRESH Python process (its peak RSS, VmHWM, is a
process's high-water mark): it imports fastmlp and scikit-learn, builds X (float32,
generated in chunks so no float64 temporary inflates the peak) and integer
labels, records its resident set size, fits once and reads the peak RSS. It
prints the data size, the RSS before fit, the peak RSS and the peak minus
the RSS before fit (what fit itself added), next to the model's parameter
memory. fit should need the data plus O(parameters + batch): nothing of the
order of the data set beyond the data itself. --sklearn measures
scikit-learn's own MLPClassifier the same way, for comparison.

Run it from outside the source tree (it imports the installed fastmlp), e.g.
``cd /tmp && python /path/to/fastmlp/tools/memory_profile.py``.
"""
import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, os, resource, sys, warnings
import numpy as np
args = json.loads(sys.argv[1])
import fastmlp
import fastmlp.sklearn
from sklearn.neural_network import MLPClassifier as SkMLP

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

def peak_rss():
    # VmHWM: the high-water mark of THIS process image. (ru_maxrss is not:
    # Linux carries the RSS of the forked copy of the parent into it at exec.)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


rng = np.random.default_rng(0)
n, d = args["samples"], args["features"]
X = np.empty((n, d), np.float32)
for i in range(0, n, 4096):
    X[i:i + 4096] = rng.standard_normal((min(4096, n - i), d), dtype=np.float32)
y = rng.integers(0, 10, n)
cls = SkMLP if args["sklearn"] else fastmlp.MLPClassifier
est = cls(hidden_layer_sizes=tuple(args["hidden"]), solver=args["solver"],
          max_iter=args["max_iter"], batch_size=args["batch_size"], random_state=0)
before = rss()
peak_before = peak_rss()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    est.fit(X, y)
peak = peak_rss()
n_params = sum(c.size + b.size for c, b in zip(est.coefs_, est.intercepts_))
print(json.dumps({"data": X.nbytes + y.nbytes, "rss_before_fit": before,
                  "peak_before_fit": peak_before, "peak": peak,
                  "param_bytes": n_params * est.coefs_[0].itemsize,
                  "coef_dtype": str(est.coefs_[0].dtype)}))
"""


def measure(args, sklearn):
    cfg = dict(samples=args.samples, features=args.features,
               hidden=[int(h) for h in args.hidden.split(",")], solver=args.solver,
               max_iter=args.max_iter, batch_size=args.batch_size, sklearn=sklearn)
    r = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], capture_output=True,
                       text=True, cwd=os.path.expanduser("~") if os.path.isdir(
                           os.path.expanduser("~")) else "/")
    if r.returncode != 0:
        sys.exit(r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=60000)
    p.add_argument("--features", type=int, default=784)
    p.add_argument("--hidden", default="256,128")
    p.add_argument("--solver", default="sgd")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-iter", type=int, default=1)
    p.add_argument("--sklearn", action="store_true", help="also measure scikit-learn's own")
    args = p.parse_args(argv)
    mib = 2.0 ** 20
    print(f"MLPClassifier(hidden_layer_sizes=({args.hidden}), solver={args.solver!r}, "
          f"max_iter={args.max_iter}, batch_size={args.batch_size}) on "
          f"{args.samples}x{args.features} float32")
    for name, sk in (("fastmlp", False),) + ((("scikit-learn", True),) if args.sklearn else ()):
        m = measure(args, sk)
        added = m["peak"] - m["rss_before_fit"]
        print(f"{name:>12}: data {m['data'] / mib:7.1f} MiB | RSS before fit "
              f"{m['rss_before_fit'] / mib:7.1f} MiB | peak {m['peak'] / mib:7.1f} MiB | "
              f"fit added {added / mib:6.1f} MiB = {added / m['data']:.3f} x data | "
              f"parameters {m['param_bytes'] / mib:.2f} MiB ({m['coef_dtype']})")


if __name__ == "__main__":
    main()
