"""graphc's benchmark suite, which `graphc bench` runs: the workloads W1-W10, BA, HT, LA and ODE, verified, then timed.

Imports the public API and, lazily, scipy (the references) and the peers (JAX, PyTorch,
PyTensor through peers.py; matplotlib for plots): the `bench` extra installs them. It is
part of the package so that `graphc bench` works wherever graphc is installed; the
repository's benchmarks/ folder holds separate scripts that predate the suite.

One module per workload (w1_mlp.py ... w10_cnn.py, ba_bundle.py, ht_hand.py, linalg_solve.py,
ode_rk4.py) turns a size into `Case`s: the inputs, the expected outputs (a hand-written
NumPy forward+backward, itself checked against scipy or finite differences) and one
`Impl` per system. harness.py verifies each system's first result and only then times
it; report.py prints the table, writes the JSON and draws the plots; bandwidth.py
measures the STREAM-triad bandwidth of the memory-traffic bound; peers.py loads JAX,
PyTorch and PyTensor when they are installed.

Run it as `graphc bench [--quick] [--only W3] [--json out.json] [--plot out.png]`, or as
`python -m graphc bench ...` (the same).
"""

WORKLOADS: dict[str, str] = {
    "W1": "w1_mlp",
    "W2": "w2_rosenbrock",
    "W3": "w3_elementwise",
    "W4": "w4_dense_jacobian",
    "W5": "w5_bratu",
    "W6": "w6_hessian",
    "W7": "w7_rnn_bptt",
    "W8": "w8_compile_scaling",
    "W9": "w9_bratu2d",
    "BA": "ba_bundle",
    "HT": "ht_hand",
    "W10": "w10_cnn",
    "LA": "linalg_solve",
    "ODE": "ode_rk4",
}
"""Workload id -> the module (in this package) whose `cases(options)` builds it."""
