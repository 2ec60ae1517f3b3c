"""examples/perceptron_logic.py runs against the installed fastmlp and reports
NOT/AND/OR learned and XOR not."""
import os
import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "perceptron_logic.py"


def test_perceptron_logic_example(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # cwd outside the source tree: the installed package is the one imported
    r = subprocess.run([sys.executable, str(SCRIPT)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert r.stderr == ""                       # ConvergenceWarning for XOR is silenced
    for gate in ("NOT", "AND", "OR"):
        assert re.search(rf"^{gate}\s+accuracy 1\.00 .* learned in \d+ epochs$", out, re.M), out
    assert re.search(r"^XOR\s+accuracy 0\.\d\d .* NOT learned: stopped after 100 epochs$",
                     out, re.M), out
    # truth table rows: 2 for NOT, 4 each for AND, OR, XOR; wrong rows only for XOR
    rows = re.findall(r"^(NOT|AND|OR|XOR)\s+([01](?:,[01])?)\s+([01])\s+([01])", out, re.M)
    assert len(rows) == 14, out
    for gate, inputs, target, predicted in rows:
        bits = [int(b) for b in inputs.split(",")]
        expected = {"NOT": lambda b: 1 - b[0], "AND": lambda b: b[0] & b[1],
                    "OR": lambda b: b[0] | b[1], "XOR": lambda b: b[0] ^ b[1]}[gate](bits)
        assert int(target) == expected
        if gate != "XOR":
            assert predicted == target
    assert any(g == "XOR" and p != t for g, _, t, p in rows)
    assert "linearly separable" in out and "XOR is not linearly separable" in out
