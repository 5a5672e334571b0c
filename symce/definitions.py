"""Stage 1 — model (continued): the functions users define, as data, through the public API.

symce's own functions are written in :mod:`symce.model`.  Anyone else's (and the functions symce
ships in :mod:`symce.library`, which use nothing but this API) are declared here::

    import sympy as sp
    import symce

    x = sp.Symbol("x", real=True)
    symce.define_activation("tanh", sp.tanh(x), grad_stable=4 * symce.sigmoid(2 * x) * symce.sigmoid(-2 * x))

A loss is declared the same way, as the term of one class or one element in an input and a
target (:func:`define_loss`, ``over="classes"`` or ``"elements"``), with scalar options of its own
(:func:`option`) for the elements layout, switches that pick the term's form (:func:`switch`, with
``symce.select`` in the term; a select may also compare options with numbers, ``alpha >= 0``) and
PyTorch's ``batchmean`` reduction (``reductions=``); symce.library's nll_loss, focal_loss and
kl_div are.

A declaration is data: a name, a SymPy expression, optional stable forms and a worked example.
Every later stage reads :func:`activations`: the engine (:mod:`symce.derive`) differentiates the
definition and looks for a closed form in the function's own output (or the sigmoid's); the
proofs (:mod:`symce.proofs`) write the derivation as rule-checked steps; the registry
(:mod:`symce.kernels`) adds the function and its derivative as elementwise kernels; every language
emits them and the tests check them as they check the built-ins.

Nothing a user passes reaches a printer or a template unchecked: names go through
:func:`symce.names.check_name`; expressions must be SymPy expressions (strings are refused, never
``sympify``-ed) over one real variable, built from the functions every language prints
(:data:`FUNCTIONS`); a stable form must equal what it replaces at 50 digits at
:data:`CHECK_POINTS`; the summary is one line of printable ASCII without quotes or backslashes.
A later stage caches what it derives from these definitions; it registers its cache here
(:func:`on_change`) and a new definition clears it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import mpmath
import sympy as sp

from . import functions as fn
from . import names

__all__ = [
    "Activation",
    "Loss",
    "OVER",
    "Option",
    "option",
    "switch",
    "switched",
    "define_loss",
    "losses",
    "FUNCTIONS",
    "activations",
    "define_activation",
    "elementary",
    "forget",
    "on_change",
    "reserve",
]

# the SymPy and symce functions a definition or a stable form may use: each language prints them
FUNCTIONS = (
    sp.exp,
    sp.log,
    sp.tanh,
    sp.sinh,
    sp.cosh,
    fn.softplus,
    fn.sigmoid,
    fn.log1p,
    fn.expm1,
    fn.clamp_min,
    fn.mul0,
    fn.select,
)
# where a stable form is checked against what it replaces (and the closed form found, numerically)
CHECK_POINTS = tuple(sp.Rational(v, 8) for v in (-300, -97, -41, -13, -5, -1, 0, 3, 7, 22, 50, 211))
_DPS = 50
_SUMMARY = re.compile(r"[A-Za-z0-9 ,.;:()+\-*/^=<>|!?&%\[\]]{1,120}")

_ACTIVATIONS: dict = {}
_LOSSES: dict = {}
_LISTENERS: list = []
_RESERVED: list = []


@dataclass(frozen=True)
class Activation:
    """A user-defined elementwise function f(x), and what symce needs to emit f and f'."""

    name: str
    definition: sp.Expr  # f(x), over ``var``
    var: sp.Symbol
    summary: str  # one line: the kernels' first documentation line
    stable: sp.Expr  # the form of f(x) the kernels print (the definition unless given)
    grad_stable: sp.Expr | None  # the form of f'(x) the kernels print (None: the closed form)
    example: tuple  # the worked example's inputs
    module: str  # where it was declared, for messages

    @property
    def grad_name(self) -> str:
        """The name of the derivative's kernel and derivation: ``<name>_grad``."""
        return self.name + "_grad"

    @property
    def output(self) -> sp.Symbol:
        """The symbol of f's own output, in which its closed form is written (u = f(x))."""
        return sp.Symbol(self.name, real=True)

    @property
    def plain(self) -> sp.Expr:
        """The definition in exp and log alone (:func:`elementary`): what the proof differentiates."""
        return elementary(self.definition)


# how a declared loss's terms are laid out (define_loss's ``over``)
OVER = {
    "classes": "one term per class of a row of K (log-)probabilities, summed over the row; "
    "targets are class labels or a probability row, with the cross-entropy's options",
    "elements": "one term per element of an input of any shape and its target of the same "
    "shape, with element weights and the reduction (as the binary cross-entropies)",
}


@dataclass(frozen=True)
class Option:
    """A scalar option of a defined loss: a real number with a default, checked against a closed
    interval (None: unbounded) in every language (catalogue error "option_value"); NaN is refused.
    A switch (:func:`switch`) is an option whose value is off or on (0 or 1): the term picks a
    form by it (``symce.select``)."""

    name: str
    default: float
    low: float | None = None
    high: float | None = None
    doc: str = ""
    switch: bool = False

    @property
    def symbol(self) -> sp.Symbol:
        """The option's symbol in the loss's term."""
        return sp.Symbol(self.name, real=True)

    @property
    def interval(self) -> str:
        """The interval in words: "[0, inf)", "[0, 1]", "any real" ("True or False": a switch)."""
        if self.switch:
            return "True or False"
        if self.low is None and self.high is None:
            return "any real number"
        lo = "(-inf" if self.low is None else f"[{_number(self.low)}"
        hi = "inf)" if self.high is None else f"{_number(self.high)}]"
        return f"{lo}, {hi}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is in the interval (NaN is not); a switch's values are 0 and 1."""
        if self.switch:
            return value in (0, 1)
        low = -float("inf") if self.low is None else self.low
        high = float("inf") if self.high is None else self.high
        return low <= value <= high


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def option(
    default: float, *, low: float | None = None, high: float | None = None, doc: str = ""
) -> Option:
    """A scalar option for :func:`define_loss` (``options={"gamma": symce.option(2.0, low=0)}``):
    its default, the closed interval it must lie in (None: unbounded) and one line of words."""
    values = {"default": default, "low": low, "high": high}
    for what, value in values.items():
        if value is None and what != "default":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise TypeError(f"option {what}: expected a real number, got {value!r:.40}")
        if abs(value) == float("inf"):
            raise ValueError(
                f"option {what}: expected a finite number (None: unbounded), got {value}"
            )
    if low is not None and high is not None and low > high:
        raise ValueError(f"option: low {low} is above high {high}")
    opt = Option(
        "",
        float(default),
        None if low is None else float(low),
        None if high is None else float(high),
    )
    if not opt.contains(float(default)):
        raise ValueError(f"option default: {default} is outside {opt.interval}")
    return Option("", opt.default, opt.low, opt.high, _summary(doc or "an option", "an option"))


def switch(default: bool = False, *, doc: str = "") -> Option:
    """A switch for :func:`define_loss` (``options={"log_target": symce.switch(False)}``): an
    option that is off or on (False or True; a C ``int`` 0 or 1, a MATLAB logical), by which the
    term picks one of two forms, ``symce.select(s, form_on, form_off)`` with s the switch's symbol.
    Each language tests it once per call and evaluates only the form it picks; the proof
    differentiates both (as s form_on + (1 - s) form_off)."""
    if not isinstance(default, bool):
        raise TypeError(f"switch default: expected True or False, got {default!r:.40}")
    return Option(
        "", float(default), 0.0, 1.0, _summary(doc or "a switch", "a switch"), switch=True
    )


def switched(expr: sp.Expr, opts: tuple) -> sp.Expr:
    """``expr`` with each switch among ``opts`` it reads tested once: ``select(s, expr at s = 1,
    expr at s = 0)``, nested, so every branch is one form without a switch in it (a proof's
    s a + (1 - s) b becomes the select of a and b)."""
    for opt in opts:
        if opt.switch and opt.symbol in expr.free_symbols:
            on, off = (switched(expr.xreplace({opt.symbol: v}), opts) for v in (1, 0))
            return fn.select(opt.symbol, on, off)
    for cond in fn.conditions(expr):  # a comparison of options: its Iverson bracket, likewise
        if fn.iverson(cond) in expr.atoms(fn.iverson):
            on, off = (switched(expr.xreplace({fn.iverson(cond): v}), opts) for v in (1, 0))
            return fn.select(cond, on, off)
    return expr


def brackets(expr: sp.Expr, opts: tuple) -> list:
    """The 0/1 quantities that pick ``expr``'s forms: the switches among ``opts`` it reads and
    the Iverson brackets of the comparisons in it (:func:`symce.functions.conditions`)."""
    found = [o.symbol for o in opts if o.switch and o.symbol in expr.free_symbols]
    return found + [fn.iverson(c) for c in fn.conditions(expr)]


def picked(expr: sp.Expr, values: dict) -> sp.Expr:
    """``expr`` with every select whose condition ``values`` (symbol -> number) decide collapsed
    to the form it picks (a switch's 0 or 1, a comparison of options at their values)."""
    return expr.replace(
        lambda e: isinstance(e, (fn.select, fn.iverson)),
        lambda e: e.func(e.args[0].xreplace(values), *e.args[1:]),
    )


@dataclass(frozen=True)
class Loss:
    """A user-defined loss: a term in an input v and a target y, and what symce needs to emit the
    loss and its gradient with respect to v."""

    name: str
    term: sp.Expr  # the loss of one class (over="classes"), over ``input`` and ``target``
    input: sp.Symbol  # v: the input the gradient is taken with respect to
    target: sp.Symbol  # y: the (effective) target of the class
    over: str  # an OVER key
    input_name: str  # the input argument's name in every language
    input_doc: str  # what the input is, in words
    summary: str  # one line: the loss kernel's first documentation line
    example: tuple  # (inputs, options) of the worked example
    module: str  # where it was declared, for messages
    stable: sp.Expr | None = None  # the form of the term the kernels print (None: the term)
    grad_stable: sp.Expr | None = None  # the form of its gradient they print (None: derived)
    options: tuple = ()  # the scalar options (Option), in the order of the declaration
    grad: sp.Expr | None = None  # the gradient's closed form to show, in the ``where`` symbols
    where: tuple = ()  # ((symbol, its definition), ...): the quantities ``grad`` names
    cases: tuple = ()  # ((((option, value), ...), the term there, words), ...): proved facts
    reductions: tuple = ("none", "mean", "sum")  # the values its reduction option takes

    @property
    def grad_name(self) -> str:
        """The name of the gradient's kernel and derivation: ``<name>_grad``."""
        return self.name + "_grad"

    @property
    def plain(self) -> sp.Expr:
        """The term in exp and log alone (:func:`elementary`): what the proof differentiates."""
        return elementary(self.term)

    @property
    def zero_without_target(self) -> bool:
        """Whether the term is 0 where the target is 0: a class without target mass then adds
        nothing, even where its input is infinite (0 * -inf = 0, as 0 log 0 = 0)."""
        return sp.simplify(self.term.xreplace({self.target: 0})) == 0


def reserve(provider: Callable[[], tuple]) -> None:
    """Register ``provider``, which returns names no definition may take (the registry's own
    kernels: symce.kernels registers them, so this stage need not import that one)."""
    _RESERVED.append(provider)


def on_change(clear: Callable[[], None]) -> None:
    """Register ``clear``, called whenever the set of definitions changes (a later stage's
    cache of what it derived from them)."""
    _LISTENERS.append(clear)


def _changed() -> None:
    for clear in _LISTENERS:
        clear()


_LIBRARY = []  # whether symce.library's modules have been imported


def activations() -> tuple:
    """Every declared activation, in the order of declaration: symce's library first (imported
    here the first time), then the user's."""
    _load_library()
    return _ordered(_ACTIVATIONS)


def losses() -> tuple:
    """Every declared loss, in the order of declaration: symce's library first, then the user's."""
    _load_library()
    return _ordered(_LOSSES)


def _ordered(table: dict) -> tuple:
    """The declarations of ``table``: symce's library by module name (whatever order its modules
    were imported in: a test or a tool may import one first), then the user's as declared."""
    items = list(table.values())
    library = [d for d in items if d.module.startswith(f"{__package__}.library.")]
    users = [d for d in items if d not in library]
    return tuple(sorted(library, key=lambda d: (d.module, d.name)) + users)


def _load_library() -> None:
    if not _LIBRARY:
        _LIBRARY.append(True)
        import importlib

        from .library import modules

        for mod in modules():
            importlib.import_module(f"{__package__}.library.{mod}")


def forget(name: str) -> None:
    """Remove the definition ``name`` (KeyError if there is none): for tests and notebooks."""
    table = _LOSSES if name in _LOSSES else _ACTIVATIONS
    del table[name]
    _changed()


def _taken(name: str) -> dict:
    """The names a declaration ``name`` may not take (its own kernels and another's, and symce's
    kernels), each with what holds it; symce's library is loaded first, so its names are taken
    before any user's."""
    _load_library()
    taken = {}
    for kind, table in (("activation", _ACTIVATIONS), ("loss", _LOSSES)):
        for k in table:
            if k != name:
                taken[k] = f"the {kind} {k}"
                taken[f"{k}_grad"] = f"the derivative of {k}"
    for provider in _RESERVED:
        taken.update({k: f"symce's kernel {k}" for k in provider()})
    return taken


def _add(table: dict, decl, same: Callable) -> object:
    """Register ``decl`` in ``table``: the same declaration again returns the existing one, a
    different one under a name already defined is an error."""
    old = _ACTIVATIONS.get(decl.name) or _LOSSES.get(decl.name)
    if old is not None:
        if type(old) is type(decl) and same(old, decl):
            return old
        raise ValueError(f"name: {decl.name!r} is already defined (in {old.module}) differently")
    table[decl.name] = decl
    _changed()
    return decl


def elementary(expr: sp.Expr) -> sp.Expr:
    """``expr`` with symce's functions and the hyperbolic functions written in exp and log."""
    expr = fn.to_plain(sp.sympify(expr))
    return expr.replace(
        lambda e: isinstance(e, (sp.tanh, sp.sinh, sp.cosh)), lambda e: e.rewrite(sp.exp)
    )


def _expression(value, what: str, var: sp.Symbol | None) -> tuple:
    """(expression over one real variable, that variable); TypeError/ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = sp.sympify(value)
    if not isinstance(value, sp.Expr):
        raise TypeError(
            f"{what}: expected a SymPy expression (strings are not parsed), got "
            f"{type(value).__name__} {value!r:.80}"
        )
    free = value.free_symbols
    if var is None:
        if len(free) != 1:
            raise ValueError(
                f"{what}: expected an expression of one variable, got {len(free)} "
                f"({', '.join(sorted(map(str, free))) or 'none'}): pass var= to choose"
            )
        (var,) = free
    elif not isinstance(var, sp.Symbol):
        raise TypeError(f"var: expected a SymPy Symbol, got {type(var).__name__} {var!r:.80}")
    else:  # the variable by its name, whatever its assumptions (real or not)
        value = value.xreplace({s: var for s in free if s.name == var.name})
        free = value.free_symbols
    extra = free - {var}
    if extra:
        raise ValueError(
            f"{what}: expected an expression of {var} alone, got also "
            f"{', '.join(sorted(map(str, extra)))}"
        )
    _check_nodes(value, what)
    real = sp.Symbol(var.name, real=True)
    return value.xreplace({var: real}), real


def _check_nodes(value: sp.Expr, what: str) -> None:
    """ValueError unless ``value`` is built from :data:`FUNCTIONS` and real arithmetic alone."""
    allowed = tuple(f for f in FUNCTIONS if isinstance(f, type))
    for node in sp.preorder_traversal(value):
        if isinstance(node, sp.Function) and not isinstance(node, allowed):
            raise ValueError(
                f"{what}: {type(node).__name__} is not printed in every language; expected "
                f"functions among {', '.join(f.__name__ for f in FUNCTIONS)}"
            )
        if isinstance(node, (sp.Derivative, sp.Integral, sp.Sum, sp.Piecewise, sp.Indexed)):
            raise ValueError(f"{what}: expected a closed expression, got a {type(node).__name__}")
        if node.is_number and not node.is_real and node.is_number is not None:
            raise ValueError(f"{what}: expected real arithmetic, got {node}")


def _symbol(value, what: str) -> sp.Symbol:
    """``value`` as a real symbol of the same name; TypeError if it is not a Symbol."""
    if not isinstance(value, sp.Symbol):
        raise TypeError(
            f"{what}: expected a SymPy Symbol, got {type(value).__name__} {value!r:.80}"
        )
    return sp.Symbol(value.name, real=True)


def _term(value, what: str, variables: tuple) -> sp.Expr:
    """An expression over ``variables`` (real symbols, matched by name) alone, from
    :data:`FUNCTIONS`; TypeError/ValueError otherwise."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = sp.sympify(value)
    if not isinstance(value, sp.Expr):
        raise TypeError(
            f"{what}: expected a SymPy expression (strings are not parsed), got "
            f"{type(value).__name__} {value!r:.80}"
        )
    by_name = {v.name: v for v in variables}
    extra = sorted(s.name for s in value.free_symbols if s.name not in by_name)
    if extra:
        raise ValueError(
            f"{what}: expected an expression of {', '.join(by_name)} alone, got also "
            f"{', '.join(extra)}"
        )
    value = value.xreplace({s: by_name[s.name] for s in value.free_symbols})
    _check_nodes(value, what)
    return value


def equal_at_points(a: sp.Expr, b: sp.Expr, var: sp.Symbol) -> str:
    """'' when ``a`` and ``b`` agree to 40 digits at every :data:`CHECK_POINTS` where both are
    finite (and are infinite together), else the first point where they differ."""
    fa, fb = (sp.lambdify(var, elementary(e), "mpmath") for e in (a, b))
    for v in CHECK_POINTS:
        try:
            with mpmath.workdps(_DPS + 20):
                point = mpmath.mpf(v.p) / v.q
                va, vb = fa(point), fb(point)
        except (ZeroDivisionError, OverflowError, ValueError):
            continue
        if not (mpmath.isfinite(va) and mpmath.isfinite(vb)):
            if va != vb:
                return f"at {var} = {v}: {va} != {vb}"
            continue
        if abs(va - vb) > mpmath.mpf(10) ** -40 * max(1, abs(va), abs(vb)):
            return f"at {var} = {v}: {mpmath.nstr(va, 20)} != {mpmath.nstr(vb, 20)}"
    return ""


def _summary(value: object, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise TypeError(f"summary: expected a string, got {type(value).__name__}")
    if not _SUMMARY.fullmatch(value) or "*/" in value or "/*" in value or "//" in value:
        raise ValueError(
            "summary: expected one line of at most 120 printable ASCII characters without "
            f"quotes, backslashes, braces, '#', '@' or a C comment's '/*', '*/' or '//' (it is "
            f"printed into every language's "
            f"comments and strings), got {value!r:.140}"
        )
    return value


def _example(value) -> tuple:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise TypeError(f"example: expected a sequence of numbers, got {value!r:.80}") from None
    if not 1 <= len(out) <= 6 or not all(abs(v) <= 50 for v in out):
        raise ValueError(f"example: expected 1 to 6 numbers in [-50, 50], got {out}")
    return out


def define_activation(
    name: str,
    definition: sp.Expr,
    *,
    var: sp.Symbol | None = None,
    summary: str | None = None,
    stable: sp.Expr | None = None,
    grad_stable: sp.Expr | None = None,
    example: tuple = (-1.0, 0.0, 2.0),
) -> Activation:
    """Declare an elementwise activation f(x): symce derives f', proves it and emits both.

    Args:
        name: the kernels' name (``name`` and ``name_grad``): lowercase snake_case, valid and
            unreserved in C, C++, Python and MATLAB, and not taken (:func:`symce.names.check_name`).
        definition: f as a SymPy expression of one real variable, from :data:`FUNCTIONS`
            (e.g. ``sp.tanh(x)``, ``sp.log(1 + sp.exp(x))``).
        var: the variable, when the expression has more than one symbol (it may not).
        summary: one line for the kernels' documentation (default: "<name>, elementwise.").
        stable: the form of f the kernels evaluate, when the definition overflows or cancels
            (e.g. ``symce.softplus(x)`` for log(1 + e^x)); it must equal the definition.
        grad_stable: the form of f' the kernels evaluate, when the closed form cancels (e.g.
            4 sigma(2x) sigma(-2x) for 1 - tanh^2); it must equal f'.
        example: the inputs of the worked example in the kernels' documentation.

    Returns:
        The :class:`Activation` (also registered: the registry, ``symce list`` and ``symce
        derive`` include it).  Declaring the same name again with the same arguments returns
        the existing declaration; with different ones it is an error.

    Raises:
        TypeError, ValueError: a name, expression, summary or example that is not acceptable,
        or a stable form that does not equal what it replaces (the message says where).
    """
    taken = _taken(name)
    names.check_name(name, "activation name", taken)
    names.check_name(name + "_grad", "activation name (its derivative's kernel)", taken)
    definition, var = _expression(definition, "definition", var)
    if var.name == name:
        raise ValueError(f"name: {name!r} is also the variable's name; rename one")
    raw = sp.diff(definition, var)
    if raw == 0 or var not in definition.free_symbols:
        raise ValueError(f"definition: {definition} does not depend on {var}")
    forms = {}
    for what, value, target in (("stable", stable, definition), ("grad_stable", grad_stable, raw)):
        if value is None:
            continue
        form, _ = _expression(value, what, var)
        wrong = equal_at_points(form, target, var)
        if wrong:
            raise ValueError(
                f"{what}: {form} is not equal to {'the definition' if what == 'stable' else 'its derivative'} "
                f"{target}: {wrong}"
            )
        forms[what] = form
    act = Activation(
        name,
        definition,
        var,
        _summary(summary, f"{name}, elementwise."),
        forms.get("stable", definition),
        forms.get("grad_stable"),
        _example(example),
        _caller_module(),
    )
    return _add(_ACTIVATIONS, act, _same)


def _same(a: Activation, b: Activation) -> bool:
    return (a.definition, a.stable, a.grad_stable, a.summary, a.example) == (
        b.definition,
        b.stable,
        b.grad_stable,
        b.summary,
        b.example,
    )


def _caller_module() -> str:
    import inspect

    for frame in inspect.stack(context=0)[2:]:  # no source lines read
        mod = frame.frame.f_globals.get("__name__", "")
        if mod != __name__:  # printed into the proofs: a dotted identifier, or nothing of it
            return mod if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,80}", mod) else "a module"
    return "__main__"


# the arguments and options each layout's kernels take besides the input (symce.kernels): the
# input and a declared option may be named none of them
_ARGUMENTS = {
    "classes": ("target", "labels", "weight", "ignore_index", "label_smoothing", "reduction"),
    "elements": ("target", "weight", "reduction"),
}
_OUTPUTS = ("loss", "grad")
_DEFAULT_EXAMPLE = {
    "classes": (
        ((-1.2, -0.5, -2.3), (-0.1, -3.0, -2.5)),  # two rows of log-probabilities
        (1, 0),  # their labels
    ),
    "elements": (((2.0, -1.0, 0.5),), ((1.0, 0.0, 1.0),)),  # three inputs and their targets
}
# where a stable form of a loss is checked against what it replaces: inputs, and targets 0, 1 and
# between (the options at their defaults and at the ends of their intervals)
_LOSS_POINTS = tuple(sp.Rational(v, 8) for v in (-300, -41, -5, 0, 3, 22, 211))
_TARGET_POINTS = (sp.Integer(0), sp.Rational(1, 4), sp.Integer(1))


def define_loss(
    name: str,
    term: sp.Expr,
    *,
    input: sp.Symbol,  # PyTorch's name for a loss's first argument
    target: sp.Symbol,
    over: str = "classes",
    options: dict | None = None,
    stable: sp.Expr | None = None,
    grad_stable: sp.Expr | None = None,
    grad: sp.Expr | None = None,
    where: dict | None = None,
    cases: tuple = (),
    reductions: tuple = ("none", "mean", "sum"),
    input_name: str = "input",
    input_doc: str | None = None,
    summary: str | None = None,
    example: tuple | None = None,
) -> Loss:
    """Declare a loss: symce derives its gradient with respect to the input, proves it and emits
    the loss and the gradient, with the options of its layout and its own.

    Args:
        name: the kernels' name (``name`` and ``name_grad``), as for :func:`define_activation`.
        term: the loss of one class or element, a SymPy expression of ``input``, ``target`` and
            the options' symbols (``sp.Symbol(option name)``), from :data:`FUNCTIONS` (e.g.
            ``-y * v`` for the negative log-likelihood of log-probabilities v).
        input: the symbol of the input (the gradient is taken with respect to it).
        target: the symbol of the target.
        over: how the terms are laid out (:data:`OVER`).  ``"classes"``: a row of K inputs per
            sample, its loss the sum of the K terms, where the target of class k is the
            cross-entropy's effective target y~_k: from a class label t (one-hot, times the
            label's class weight) or from a probability row, with ``weight``,
            ``ignore_index``, ``label_smoothing`` and ``reduction`` as PyTorch's cross_entropy.
            ``"elements"``: one term per element of an input of any shape and a target of its
            shape, with element ``weight`` and ``reduction`` as PyTorch's binary cross-entropy.
        options: ``{name: symce.option(default, low=, high=, doc=)}``, the term's scalar options
            (``"elements"`` only), each a keyword in NumPy, a C ``double`` and a MATLAB
            name-value pair, checked against its interval.
        stable: the form of the term the kernels evaluate, where the term as written overflows or
            cancels; it must equal the term (checked at 50 digits).
        grad_stable: the form of the gradient the kernels evaluate; it must equal the derivative.
        grad: the gradient's closed form as the documents show it, in the quantities ``where``
            names (``{"q": 1 - p_t, ...}``); the proof ends in it, and it must equal the
            derivative once they are substituted.  Without it, the derivative is shown as the
            rules give it (or simpler).
        cases: ``(({"gamma": 0}, term, words), ...)``: at those option values the loss is
            ``term`` (a known loss, in ``words``); the proof checks it, and its gradient, as facts.
        reductions: the values its ``reduction`` option takes: ``"none"``, ``"mean"`` and
            ``"sum"``, and ``"batchmean"`` (the total over the number of samples, PyTorch's
            kl_div's) for a loss over elements that declares it.
        input_name: the input argument's name in every language (PyTorch's ``input``).
        input_doc: what the input is, for the documentation.
        summary: one line for the loss kernel's documentation.
        example: ``(inputs, targets)`` or ``(inputs, targets, options)`` of the worked example
            (rows of inputs; labels or target rows for ``"classes"``).

    Returns:
        The :class:`Loss` (also registered: the registry, ``symce list`` and ``symce derive``
        include it).  Declaring the same name again with the same arguments returns the
        existing declaration; with different ones it is an error.

    Raises:
        TypeError, ValueError: a name, expression, layout, option, summary or example that is
        not acceptable, or a stable form that does not equal what it replaces (the message says
        which argument, what was expected and what was given).
    """
    taken = _taken(name)
    names.check_name(name, "loss name", taken)
    names.check_name(name + "_grad", "loss name (its gradient's kernel)", taken)
    if over not in OVER:
        raise ValueError(f"over: expected one of {', '.join(map(repr, OVER))}, got {over!r:.80}")
    v, y = _symbol(input, "input"), _symbol(target, "target")
    if v.name == y.name:
        raise ValueError(f"input and target: expected two different symbols, got {v} twice")
    others = {a: f"the {a} argument" for a in _ARGUMENTS[over] + _OUTPUTS}
    others[name] = "the loss's own name"
    names.check_argument(input_name, "input_name", others)
    others[input_name] = "the input's name"
    opts = _options(options, over, others, (v.name, y.name))
    variables = (v, y, *(o.symbol for o in opts))
    term = _term(term, "term", variables)
    _check_switches(term, "term", opts)
    reductions = _reductions(reductions, over)
    if v not in term.free_symbols or sp.diff(term, v) == 0:
        raise ValueError(f"term: {term} does not depend on the input {v}")
    named = []
    for key, value in (where or {}).items():
        names.check_name(key, "where: a name", {s.name: "a variable" for s in variables})
        named.append((sp.Symbol(key, real=True), _term(value, f"where[{key!r}]", variables)))
        _check_switches(named[-1][1], f"where[{key!r}]", opts)
    closed = None
    if grad is not None:
        closed = _term(grad, "grad", variables + tuple(s for s, _ in named))
        _check_switches(closed, "grad", opts)
        unfolded = closed.xreplace(dict(named))
        wrong = _equal_on_grid(unfolded, sp.diff(term, v), v, y, opts)
        if wrong:
            raise ValueError(f"grad: {closed} is not the derivative of the term: {wrong}")
    elif named:
        raise ValueError("where: names quantities for grad=, which is not given")
    facts = []
    for case in cases:
        if not isinstance(case, (tuple, list)) or len(case) != 3 or not isinstance(case[0], dict):
            raise TypeError(f"cases: expected ({{option: value}}, term, words), got {case!r:.80}")
        values, known, words = case
        values = dict(values)
        by_name = {o.name: o for o in opts}
        for key, value in values.items():
            if key not in by_name:
                raise ValueError(f"cases: {key!r} is not an option of the loss")
            if by_name[key].switch and isinstance(value, bool):
                value = values[key] = int(value)
            elif isinstance(value, bool) or not isinstance(value, (int, float)):
                raise TypeError(f"cases: {key} must be a number, got {value!r:.40}")
            if not by_name[key].contains(float(value)):
                raise ValueError(f"cases: {key} = {value} is outside {by_name[key].interval}")
        fixed = tuple(sorted((k, sp.nsimplify(v)) for k, v in values.items()))
        facts.append((fixed, _term(known, "cases: term", variables), _summary(words, "")))
    forms = {}
    for what, value, want in (
        ("stable", stable, term),
        ("grad_stable", grad_stable, sp.diff(term, v)),
    ):
        if value is None:
            continue
        form = _term(value, what, variables)
        _check_switches(form, what, opts)
        wrong = _equal_on_grid(form, want, v, y, opts)
        if wrong:
            target_words = "the term" if what == "stable" else "its derivative"
            raise ValueError(f"{what}: {form} is not equal to {target_words} {want}: {wrong}")
        forms[what] = form
    doc = input_doc or ("log-probabilities, one row per sample" if over == "classes" else "input")
    loss = Loss(
        name,
        term,
        v,
        y,
        over,
        input_name,
        _summary(doc, "input"),
        _summary(summary, f"{name} of {input_name} against a target."),
        _loss_example(example, over, opts, reductions),
        _caller_module(),
        forms.get("stable"),
        forms.get("grad_stable"),
        opts,
        closed,
        tuple(named),
        tuple(facts),
        reductions,
    )
    return _add(_LOSSES, loss, lambda a, b: a == b)


_REDUCTIONS = ("none", "mean", "sum")  # every loss's (symce.reductions.REDUCTIONS)
_EXTRA_REDUCTIONS = {"batchmean": "elements"}  # a reduction a loss may add: the layout it needs


def _reductions(value, over: str) -> tuple:
    """The reduction values a loss takes: none, mean and sum, and those it adds."""
    if isinstance(value, str) or not isinstance(value, (tuple, list)):
        raise TypeError(f"reductions: expected a tuple of names, got {value!r:.80}")
    value = tuple(value)
    extra = [r for r in value if r not in _REDUCTIONS]
    for r in extra:
        if r not in _EXTRA_REDUCTIONS:
            raise ValueError(
                f"reductions: expected names among {', '.join(_REDUCTIONS + tuple(_EXTRA_REDUCTIONS))}"
                f", got {r!r:.40}"
            )
        if _EXTRA_REDUCTIONS[r] != over:
            raise ValueError(f"reductions: {r!r} is for a loss over {_EXTRA_REDUCTIONS[r]!r}")
    if not set(_REDUCTIONS) <= set(value) or len(set(value)) != len(value):
        raise ValueError(
            f"reductions: expected 'none', 'mean' and 'sum' (each once), then any of "
            f"{', '.join(map(repr, _EXTRA_REDUCTIONS))}, got {value!r:.80}"
        )
    return _REDUCTIONS + tuple(r for r in _EXTRA_REDUCTIONS if r in value)


def _options(value, over: str, taken: dict, symbols: tuple) -> tuple:
    """The declared options as named :class:`Option` records, checked."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise TypeError(f"options: expected a dict of name: symce.option(...), got {value!r:.80}")
    if value and over != "elements":
        raise ValueError(f"options: a loss over {over!r} takes the cross-entropy's options alone")
    out = []
    for key, opt in value.items():
        if key in symbols:
            raise ValueError(f"option name: {key!r} is also the input's or the target's symbol")
        names.check_argument(key, "option name", taken)
        if key.startswith("opt_"):
            raise ValueError(f"option name: the prefix opt_ is symce's own, got {key!r}")
        if not isinstance(opt, Option):
            raise TypeError(f"options[{key!r}]: expected symce.option(...), got {opt!r:.80}")
        taken = {**taken, key: "another option"}
        out.append(Option(key, opt.default, opt.low, opt.high, opt.doc, opt.switch))
    return tuple(out)


def _check_switches(expr: sp.Expr, what: str, opts: tuple) -> None:
    """ValueError unless every select tests a switch's symbol or compares options (not
    switches) with numbers or each other, and a switch's symbol appears nowhere else (a switch
    picks a form; it is not a number in the arithmetic)."""
    switches = {o.symbol for o in opts if o.switch}
    numbers = {o.symbol for o in opts if not o.switch}
    for node in sp.preorder_traversal(expr):
        if isinstance(node, fn.iverson):
            raise ValueError(f"{what}: write symce.select(condition, a, b), not iverson")
        if not isinstance(node, fn.select) or node.args[0] in switches:
            continue
        cond = node.args[0]
        if not (
            isinstance(cond, _COMPARISONS)
            and cond.free_symbols
            and cond.free_symbols <= numbers
            and all(_real_expr(side) for side in cond.args)
        ):
            raise ValueError(
                f"{what}: select's first argument must be a switch's symbol "
                f"({', '.join(sorted(s.name for s in switches)) or 'none declared'}) or a "
                "comparison (<, <=, >, >=) of options "
                f"({', '.join(sorted(s.name for s in numbers)) or 'none declared'}) "
                f"with numbers, got {cond}"
            )
    bare = expr.replace(lambda e: isinstance(e, fn.select), lambda e: sp.Add(*e.args[1:]))
    used = bare.free_symbols & switches
    if used:
        raise ValueError(
            f"{what}: the switch {', '.join(sorted(s.name for s in used))} may only be "
            "select's first argument (symce.select(s, form_on, form_off))"
        )


_COMPARISONS = (sp.StrictLessThan, sp.LessThan, sp.StrictGreaterThan, sp.GreaterThan)


def _real_expr(e: sp.Basic) -> bool:
    """A side of a select's comparison: a real number, a symbol, or arithmetic of them."""
    return isinstance(e, sp.Expr) and all(
        isinstance(n, (sp.Symbol, sp.Number, sp.Add, sp.Mul, sp.Pow))
        for n in sp.preorder_traversal(e)
    )


def _equal_on_grid(a: sp.Expr, b: sp.Expr, v: sp.Symbol, y: sp.Symbol, opts: tuple) -> str:
    """'' when ``a`` and ``b`` agree to 40 digits over a grid of inputs, targets and option
    values (where both are finite; infinite together), else the first point where they differ."""
    import itertools

    numbers = tuple(o for o in opts if not o.switch)
    syms = (v, y, *(o.symbol for o in numbers))
    settings = [(o.default,) + tuple(e for e in (o.low, o.high) if e is not None) for o in numbers]
    a, b = elementary(a), elementary(b)
    switches = list(dict.fromkeys(brackets(a, opts) + brackets(b, opts)))
    for on in itertools.product((0, 1), repeat=len(switches)):
        at = dict(zip(switches, on))  # each form on its own, whatever the options' values
        wrong = _equal_at(a.xreplace(at), b.xreplace(at), syms, settings)
        if wrong:
            return wrong + "".join(f" ({s} = {bool(x)})" for s, x in at.items())
    return ""


def _equal_at(a: sp.Expr, b: sp.Expr, syms: tuple, settings: list) -> str:
    """'' when ``a`` and ``b`` agree over the grid of :func:`_equal_on_grid`."""
    import itertools

    fa, fb = (sp.lambdify(syms, elementary(e), "mpmath") for e in (a, b))
    for point in itertools.product(_LOSS_POINTS, _TARGET_POINTS, *settings):
        try:
            with mpmath.workdps(_DPS + 20):
                args = [mpmath.mpf(sp.Rational(c).p) / sp.Rational(c).q for c in point]
                va, vb = fa(*args), fb(*args)
        except (ZeroDivisionError, OverflowError, ValueError):
            continue
        if not (mpmath.isfinite(va) and mpmath.isfinite(vb)):
            if va != vb and not (mpmath.isnan(va) and mpmath.isnan(vb)):
                return f"at {dict(zip(map(str, syms), map(str, point)))}: {va} != {vb}"
            continue
        if abs(va - vb) > mpmath.mpf(10) ** -40 * max(1, abs(va), abs(vb)):
            where = dict(zip(map(str, syms), map(str, point)))
            return f"at {where}: {mpmath.nstr(va, 20)} != {mpmath.nstr(vb, 20)}"
    return ""


def _loss_example(
    value, over: str, opts_declared: tuple = (), reductions: tuple = _REDUCTIONS
) -> tuple:
    """(inputs, targets, options) as tuples of numbers (rows), checked: for ``"elements"`` one
    row of inputs and one of targets of the same length, for ``"classes"`` rows and labels or
    target rows."""
    if value is None:
        value = _DEFAULT_EXAMPLE[over]
    if not isinstance(value, (tuple, list)) or len(value) not in (2, 3):
        raise TypeError(f"example: expected (inputs, targets[, options]), got {value!r:.80}")
    inputs, targets, opts = (*value, {})[:3]
    try:
        rows = tuple(tuple(float(v) for v in row) for row in inputs)
        labels = tuple(targets)
        if all(isinstance(t, (int,)) and not isinstance(t, bool) for t in labels):
            labels = tuple(int(t) for t in labels)
        else:
            labels = tuple(tuple(float(v) for v in row) for row in labels)
    except (TypeError, ValueError):
        raise TypeError(
            f"example: expected rows of numbers and their labels or target rows, got {value!r:.80}"
        ) from None
    K = len(rows[0]) if rows else 0
    if not 1 <= len(rows) <= 4 or not 1 <= K <= 6 or any(len(r) != K for r in rows):
        raise ValueError(f"example: expected 1 to 4 rows of the same 1 to 6 numbers, got {rows}")
    if len(labels) != len(rows):
        raise ValueError(f"example: expected one target per row, got {len(labels)}")
    for t in labels:
        if isinstance(t, int) and not 0 <= t < K:
            raise ValueError(f"example: expected labels in [0, {K}), got {t}")
        if not isinstance(t, int) and len(t) != K:
            raise ValueError(f"example: expected target rows of {K} numbers, got {t}")
    if over == "elements" and (labels and isinstance(labels[0], int) or len(labels) != len(rows)):
        raise ValueError("example: expected target rows of the inputs' shape")
    allowed = {"reduction"} | ({"label_smoothing"} if over == "classes" else set())
    allowed |= {o.name for o in opts_declared}
    if not isinstance(opts, dict) or not set(opts) <= allowed:
        raise ValueError(
            f"example: expected options among {', '.join(sorted(allowed))}, got {opts!r:.80}"
        )
    for o in opts_declared:
        if o.name in opts and not (
            isinstance(opts[o.name], (int, float))
            and isinstance(opts[o.name], bool) == o.switch
            and o.contains(float(opts[o.name]))
        ):
            raise ValueError(
                f"example: option {o.name} must be in {o.interval}, got {opts[o.name]!r:.40}"
            )
    if opts.get("reduction", "mean") not in reductions:
        raise ValueError(
            f"example: reduction must be one of {', '.join(map(repr, reductions))}, got "
            f"{opts['reduction']!r:.40}"
        )
    return rows, labels, tuple(sorted(opts.items()))
