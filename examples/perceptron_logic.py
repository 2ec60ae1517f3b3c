"""Logic gates with a single perceptron: NOT, AND and OR are learned, XOR is not.

Run:  python examples/perceptron_logic.py

A perceptron predicts 1 when w.x + b > 0, so its decision boundary is a
straight line (a hyperplane). The perceptron learning algorithm finds such a
line whenever one exists (the data are linearly separable) and stops after an
epoch without mistakes; for XOR no line exists, so it runs out of epochs.
"""
import textwrap
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

import fastmlp

MAX_EPOCHS = 100

X1 = np.array([[0.0], [1.0]])
X2 = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
GATES = {
    "NOT": (X1, np.array([1, 0])),
    "AND": (X2, np.array([0, 0, 0, 1])),
    "OR": (X2, np.array([0, 1, 1, 1])),
    "XOR": (X2, np.array([0, 1, 1, 0])),
}


def main():
    print(f"fastmlp {fastmlp.__version__}: perceptron learning algorithm on logic gates "
          f"(at most {MAX_EPOCHS} epochs)\n")
    print(f"{'gate':<5} {'inputs':<8} {'target':>6} {'predicted':>9}")
    summary = []
    for name, (X, y) in GATES.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # XOR: reported below
            p = fastmlp.Perceptron(max_iter=MAX_EPOCHS, shuffle=False).fit(X, y)
        pred = p.predict(X)
        for x, t, o in zip(X, y, pred):
            inputs = ",".join(str(int(v)) for v in x)
            print(f"{name:<5} {inputs:<8} {t:>6} {o:>9}{'' if t == o else '   <- wrong'}")
        w = ", ".join(f"{v:g}" for v in p.coef_[0])
        status = (f"learned in {p.n_iter_} epochs" if p.converged_
                  else f"NOT learned: stopped after {p.n_iter_} epochs")
        summary.append(f"{name:<4} accuracy {p.score(X, y):.2f}  w = [{w}], b = "
                       f"{p.intercept_[0]:g}  {status}")
        print()
    print("\n".join(summary))
    print()
    print(textwrap.fill(
        "NOT, AND and OR are linearly separable: one straight line w.x + b = 0 puts "
        "the 1s on one side and the 0s on the other, and the perceptron finds it. "
        "XOR is not linearly separable (its 1s, (0,1) and (1,0), sit on opposite "
        "corners), so no single perceptron can represent it; it takes a hidden layer: "
        "XOR(a, b) = AND(OR(a, b), NOT(AND(a, b))), a multilayer perceptron.", width=88))


if __name__ == "__main__":
    main()
