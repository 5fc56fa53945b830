"""``show_source`` and the functions the chapters show.

(a) ``show_source`` renders Markdown with the function's code and the file it lives in;
(b) every function a chapter shows exists, fits in 88 characters per line, and its body reads
    like its equation: no ``raise ValueError`` and no ``_check.`` call (argument checks live in
    the validator of ``_check.checked``);
(c) ``_check.checked`` keeps the wrapped function, its docstring, name and signature.

``SHOWN`` lists the functions by dotted name; add a chapter's functions by appending to it.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest

from s4lite import _check
from s4lite.show import Source, show_source, source_of

LIMIT = 88

#: Every function a chapter shows with ``show_source`` (module path + attribute name).
SHOWN: tuple[str, ...] = (
    # chapter 8: the layer and the block; the appendix: the fused Pallas kernel
    "s4lite.layer.init_s4",
    "s4lite.layer.ssm_parts",
    "s4lite.layer.s4_kernel",
    "s4lite.layer.s4_apply",
    "s4lite.layer.c_from_ctilde",
    "s4lite.layer.fft_conv",
    "s4lite.layer.toeplitz_conv",
    "s4lite.model.block",
    "s4lite.cauchy_pallas.kernel_dplr_conj_fused",
    "s4lite.cauchy_pallas.cauchy_unit_circle",
    # chapter 1: the continuous SSM
    "s4lite.ssm.simulate",
    "s4lite.ssm.foh_matrices",
    # chapter 2: discretization
    "s4lite.discretize.euler",
    "s4lite.discretize.bilinear",
    "s4lite.discretize.zoh",
    # chapter 3: recurrent and convolutional views
    "s4lite.recurrence.scan_ssm",
    "s4lite.convolution.kernel_naive",
    "s4lite.convolution.causal_conv",
    # chapter 4: HiPPO matrices
    "s4lite.hippo.legs",
    "s4lite.hippo.legt",
    "s4lite.hippo.lagt",
    # chapter 6: the fast kernel
    "s4lite.hippo.make_nplr",
    "s4lite.hippo.make_dplr",
    "s4lite.cauchy.cauchy_naive",
    "s4lite.cauchy.cauchy",
    "s4lite.kernel.kernel_generating_function",
    "s4lite.kernel.woodbury_resolvent",
    "s4lite.kernel.kernel_spectrum_dplr",
    "s4lite.kernel.kernel_dplr_ctilde",
    "s4lite.kernel.kernel_dplr",
    "s4lite.kernel.kernel_dplr_conj",
    # chapter 7: the recurrent S4
    "s4lite.dplr_step.discrete_dplr",
    "s4lite.dplr_step.apply_A0",
    "s4lite.dplr_step.apply_A1",
    "s4lite.dplr_step.dplr_step",
    "s4lite.dplr_step.scan_dplr",
    # chapter 5: why diagonalization fails
    "s4lite.hippo.eigenvector_condition",
    # chapter 13: S4D
    "s4lite.s4d.discretize_diag",
    "s4lite.s4d.vandermonde_kernel",
    "s4lite.s4d.kernel_s4d",
    "s4lite.s4d.init_s4d",
    "s4lite.s4d.legs_diagonal",
    # chapter 14: selective state spaces
    "s4lite.tasks.selective_copying",
    "s4lite.selective.discretize_selective",
    "s4lite.selective.scan_sequential",
    "s4lite.selective.selective_scan",
    "s4lite.selective.combine",
    "s4lite.selective.scan_parallel",
    "s4lite.mamba.causal_conv1d",
    "s4lite.mamba.selective_ssm",
    "s4lite.mamba.block_apply",
    # the appendix: the Pallas kernel's pieces and the training step
    "s4lite.cauchy_pallas._tiles",
    "s4lite.cauchy_pallas._forward_kernel",
    "s4lite.cauchy_pallas._cauchy_forward",
    "s4lite.fast_conv.toeplitz_bf16",
    "s4lite.model.dropout_bytes",
    "s4lite.fast_conv.toeplitz_conv_blocked",
    "s4lite.fast_conv.blocked_products",
    "s4lite.fast_conv._blocked_bwd",
    "s4lite.model.layer_norm",
    "s4lite.model.standardize",
    "s4lite.toeplitz_pallas._products_kernel",
    "s4lite.toeplitz_pallas._lag_blocks_kernel",
    "s4lite.fast_conv.lag_sums",
)

#: Modules whose every public function is checked with ``_check.checked``.
CHECKED_MODULES = (
    "s4lite.ssm",
    "s4lite.discretize",
    "s4lite.recurrence",
    "s4lite.convolution",
    "s4lite.hippo",
    "s4lite.cauchy",
    "s4lite.kernel",
    "s4lite.dplr_step",
    "s4lite.memory",
    "s4lite.show",
)


def resolve(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def public_functions(module_name: str) -> list[tuple[str, object]]:
    """The public functions defined in a module (not imported into it)."""
    module = importlib.import_module(module_name)
    return [
        (name, obj)
        for name, obj in vars(module).items()
        if not name.startswith("_")
        and callable(obj)
        and not inspect.isclass(obj)
        and getattr(inspect.unwrap(obj), "__module__", None) == module_name
    ]


def body_lines(fn) -> list[str]:
    """Source lines of ``fn`` without its decorator lines."""
    lines, _ = inspect.getsourcelines(inspect.unwrap(fn))
    return [line for line in lines if not line.lstrip().startswith("@")]


# ----------------------------------------------------------------------------- (a)


def test_show_source_renders_code_and_file():
    from s4lite.recurrence import scan_ssm

    src = show_source(scan_ssm)
    assert isinstance(src, Source)
    md = src._repr_markdown_()
    assert "```python\n" in md and md.rstrip().endswith("```")
    assert "def scan_ssm(" in md and "jax.lax.scan" in md
    assert "s4lite/recurrence.py" in md and "s4lite.recurrence.scan_ssm" in md
    assert "@_check.checked(_scan_ssm_args)" in md  # decorators are shown with the code
    lines, start = inspect.getsourcelines(inspect.unwrap(scan_ssm))
    assert src.line == start and str(src) == "".join(lines).rstrip()


def test_show_source_of_several_functions_keeps_order():
    from s4lite.discretize import euler, zoh

    md = show_source(zoh, euler)._repr_markdown_()
    assert md.index("def zoh(") < md.index("def euler(")
    assert md.count("```python") == 2 and md.count("s4lite/discretize.py") == 2


@pytest.mark.parametrize("call, arg", [(lambda: show_source(), "fns"),
                                       (lambda: show_source(3), "fns"),
                                       (lambda: source_of("scan_ssm"), "fn")])
def test_show_source_bad_input(call, arg):
    with pytest.raises(ValueError, match=rf"^{arg}:"):
        call()


# ----------------------------------------------------------------------------- (b)


def test_every_function_a_chapter_shows_is_listed():
    """Each argument of a ``show_source(...)`` call in a notebook names a function of SHOWN."""
    import json
    import re

    listed = {d.rsplit(".", 1)[1] for d in SHOWN}
    missing = []
    for path in sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] != "code":
                continue
            for call in re.findall(r"show_source\(([^)]*)\)", "".join(cell["source"])):
                for arg in filter(None, (a.strip() for a in call.split(","))):
                    if arg.rsplit(".", 1)[-1] not in listed:
                        missing.append(f"{path.name}: {arg}")
    assert not missing, f"shown but not in SHOWN (add them): {missing}"


@pytest.mark.parametrize("dotted", SHOWN)
def test_shown_function_reads_like_its_equation(dotted):
    fn = resolve(dotted)
    lines, _ = inspect.getsourcelines(inspect.unwrap(fn))
    long = [(i, len(line.rstrip("\n"))) for i, line in enumerate(lines, 1)
            if len(line.rstrip("\n")) > LIMIT]
    assert not long, f"{dotted}: lines longer than {LIMIT} characters (line, length): {long}"
    body = "".join(body_lines(fn))
    assert "raise ValueError" not in body, f"{dotted}: argument checks in the body"
    assert "_check." not in body, f"{dotted}: _check call in the body"


# ----------------------------------------------------------------------------- (c)


def test_checked_keeps_wrapped_doc_name():
    def _f_args(x, y=2):
        if x < 0:
            raise ValueError("x: expected a number >= 0")
        return float(x), y

    def f(x, y=2):
        """Doc of f."""
        return x + y

    g = _check.checked(_f_args)(f)
    assert g.__wrapped__ is f and inspect.unwrap(g) is f
    assert g.__doc__ == "Doc of f." and g.__name__ == "f" and g.__qualname__ == f.__qualname__
    assert g.validate is _f_args
    assert str(inspect.signature(g)) == "(x, y=2)"
    assert g(1) == 3.0 and g(1, y=5) == 6.0
    with pytest.raises(ValueError, match="^x:"):
        g(-1)


@pytest.mark.parametrize("module_name", CHECKED_MODULES)
def test_every_public_function_is_checked_with_the_same_signature(module_name):
    functions = public_functions(module_name)
    assert functions
    for name, fn in functions:
        assert hasattr(fn, "validate") and hasattr(fn, "__wrapped__"), (
            f"{module_name}.{name} is not wrapped with _check.checked"
        )
        assert fn.__doc__ and fn.__name__ == name
        params = inspect.signature(fn).parameters
        checks = inspect.signature(fn.validate).parameters
        assert [(p.name, p.kind, p.default) for p in params.values()] == [
            (p.name, p.kind, p.default) for p in checks.values()
        ], f"{module_name}.{name}: validator and function differ in signature"
        body = "".join(body_lines(fn))
        assert "raise ValueError" not in body and "_check." not in body, (
            f"{module_name}.{name}: argument checks in the body"
        )
