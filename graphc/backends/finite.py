"""check_finite: what a step whose result holds NaN or an infinity says, for every backend.

Imports numpy and graphc.schedule. `gc.compile(..., check_finite=True)` compiles the
graph without fusion, so every node is a step, and each backend checks every float
step's result after computing it (loop bodies included, at every iteration): the
first NaN or infinity raises FloatingPointError naming the op, the step's text line,
and where the user built the node; for a node of a derivative, the forward node it
differentiates (`Node.differentiates`). Views (reshape, transpose, broadcast, slice) show
values already checked and are skipped. With check_finite=False nothing of this is
generated: the code is the same as without the option.
"""

from __future__ import annotations

import math

import numpy as np

from graphc.schedule import VIEW_OPS, Step, step_text


def checked(step: Step) -> bool:
    """Whether check_finite checks this step's result: a float value that is not a view."""
    return step.type.dtype.kind == "f" and step.op not in VIEW_OPS


def message(step: Step) -> str:
    """The error text, a format string with `{value}` and `{index}` left for the offending element."""
    origin = step.differentiates
    head = f"check_finite: the result of {step.op} is {{value}} at flat index {{index}}"
    lines = [head, f"  {_escaped(step_text(step))}"]
    if origin is not None:
        lines[0] += f", in the derivative of {origin.op}"
        if origin.loc is not None:
            lines.append(f"  the {origin.op} it differentiates was built at {_escaped(str(origin.loc))}")
    elif step.loc is not None:
        lines.append(f"  built at {_escaped(str(step.loc))}")
    return "\n".join(lines)


def _escaped(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def describe(value: float) -> str:
    """'nan', 'inf' or '-inf'."""
    if math.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def all_finite(value: np.ndarray) -> bool:
    return bool(np.isfinite(value).all())


def not_finite(value: np.ndarray, text: str) -> None:
    """Raise FloatingPointError for the first non-finite element of `value` (text from `message`)."""
    flat = np.asarray(value).reshape(-1)
    index = int(np.argmin(np.isfinite(flat)))
    raise FloatingPointError(text.format(value=describe(float(flat[index])), index=index))


def check_lines(step: Step, indent: str = "    ") -> list[str]:
    """The generated Python that checks one step's result (numpy backend); none for unchecked steps."""
    if not checked(step):
        return []
    return [f"{indent}if not rt.all_finite({step.name}):", f"{indent}    rt.not_finite({step.name}, {message(step)!r})"]
