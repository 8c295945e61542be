"""The peer frameworks JAX, PyTorch and PyTensor: imported on first use, skipped with a note when absent.

A workload writes each peer's version of its computation; the setups here do the
common part (convert the inputs, jit or compile, and return the zero-argument call
that the harness times). JAX is switched to float64 (`jax_enable_x64`) before its
first use and its results are waited for (`block_until_ready`) inside the timed call.
PyTorch runs eagerly: every call builds the autograd tape again, as user code does.

Install them with the `bench` extra, or by hand (docs/performance.md says how).
Imports numpy only; each peer lazily.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from functools import cache
from types import ModuleType

import numpy as np

JAX = "JAX"
TORCH = "PyTorch"
PYTENSOR = "PyTensor"
CASADI = "CasADi"
SYSTEMS = {"jax": JAX, "torch": TORCH, "pytensor": PYTENSOR, "casadi": CASADI}
"""The module name each peer is imported by -> its system name in the table."""

Run = Callable[[], object]
Setup = Callable[[], Run]


@cache
def _load(name: str) -> tuple[ModuleType | None, str]:
    """(the module or None, a one-line description: version and settings, or why it is missing)."""
    try:
        module = importlib.import_module(name)
    except Exception as e:
        return None, f"{SYSTEMS[name]}: skipped, not importable ({type(e).__name__}: {e})"
    if name == "jax":
        module.config.update("jax_enable_x64", True)
        devices = ", ".join(sorted({d.platform for d in module.devices()}))
        return module, f"JAX {module.__version__} (float64 on, jit, devices: {devices})"
    if name == "torch":
        return module, f"PyTorch {module.__version__} (eager, {module.get_num_threads()} threads)"
    if name == "casadi":
        return module, f"CasADi {module.__version__} (SX functions, evaluated by its virtual machine)"
    config = module.config
    return module, f"PyTensor {module.__version__} (mode {config.mode}, linker {config.linker}, cxx {config.cxx!r})"


def load(name: str) -> ModuleType:
    """The peer's module; ImportError when it is missing."""
    module, why = _load(name)
    if module is None:
        raise ImportError(why)
    return module


def unavailable(name: str) -> str | None:
    """None when the peer imports; else the note saying why its rows are skipped."""
    module, why = _load(name)
    return None if module is not None else why


def notes(wants: Callable[[str], bool]) -> list[str]:
    """One line per selected peer: its version and settings, or why it is skipped."""
    return [_load(name)[1] for name, system in SYSTEMS.items() if wants(system)]


def jax_setup(make: Callable[[ModuleType], Callable[..., object]], inputs: Sequence[np.ndarray]) -> Setup:
    """jax.jit of make(jax), called on the inputs moved to the device once; waits for the result."""

    def setup() -> Run:
        jax = load("jax")
        fn = jax.jit(make(jax))
        args = [jax.device_put(x) for x in inputs]
        return lambda: jax.block_until_ready(fn(*args))

    return setup


def torch_setup(
    fn: Callable[..., object], inputs: Sequence[np.ndarray], requires_grad: Sequence[bool] | None = None
) -> Setup:
    """fn(torch, *tensors) on tensors sharing the inputs' memory; `requires_grad` marks the leaves."""

    def setup() -> Run:
        torch = load("torch")
        flags = requires_grad if requires_grad is not None else [False] * len(inputs)
        tensors = [
            torch.from_numpy(np.ascontiguousarray(x)).requires_grad_(f) for x, f in zip(inputs, flags, strict=True)
        ]
        return lambda: fn(torch, *tensors)

    return setup


def pytensor_setup(
    build: Callable[[ModuleType], tuple[list[object], list[object]]], inputs: Sequence[np.ndarray]
) -> Setup:
    """pytensor.function(*build(pytensor)) in PyTensor's default mode, called with the NumPy inputs."""

    def setup() -> Run:
        pytensor = load("pytensor")
        variables, outputs = build(pytensor)
        fn = pytensor.function(variables, outputs)
        return lambda: fn(*inputs)

    return setup
