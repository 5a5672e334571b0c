"""Run many MATLAB calls in ONE octave-cli process, with arrays passed bit-exactly both ways.

Starting octave-cli costs about 0.13 s, so each test module collects its calls in a
:class:`Batch` and runs them all in one generated script.  Inputs go to Octave as raw
little-endian bytes (``fread``), outputs come back the same way (``fwrite``), so no value is ever
rounded through decimal text.  Every call runs in its own ``try``/``catch``: an error is a result
(identifier and message), not the end of the batch.

Arrays are given and returned in MATLAB's shape (column-major): a NumPy ``(N, K)`` batch is passed
as ``z.T`` to get MATLAB's ``K x N``.

Example::

    batch = Batch()
    key = batch.call("symce_softmax(%s)", batch.arg(z.T))
    res = batch.run(octave_path)
    res[key].value          # the K x N result as a NumPy array, dtype float64 or float32
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MATLAB_DIR = ROOT / "generated" / "matlab"
OCTAVE_FLAGS = ("-H", "-q", "--no-gui", "--norc")

# MATLAB class <-> NumPy dtype of the data that crosses the boundary
_CLASSES = {
    "double": "<f8",
    "single": "<f4",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "logical": "u1",
}
_DTYPE_CLASS = {
    np.dtype("float64"): "double",
    np.dtype("float32"): "single",
    np.dtype("int32"): "int32",
    np.dtype("int64"): "int64",
    np.dtype("uint8"): "uint8",
    np.dtype("bool"): "logical",
}

# Helper functions written next to the script (a script cannot define functions portably).
_HELPERS = {
    "symce_test_get.m": r"""
function a = symce_test_get(fid, cls, sz)
% read prod(sz) values of class cls (raw little-endian) and give them the size sz
if strcmp(cls, 'logical')
    a = logical(fread(fid, prod(sz), 'uint8=>uint8'));
else
    a = fread(fid, prod(sz), [cls '=>' cls]);
end
a = reshape(a, sz);
end
""",
    "symce_test_put.m": r"""
function symce_test_put(fid, key, varargin)
% record: key, kind 0 (values), count, then per value its class, size and raw data
fwrite(fid, [key 0 numel(varargin)], 'int32');
for i = 1:numel(varargin)
    symce_test_put_value(fid, varargin{i});
end
end

function symce_test_put_value(fid, v)
if ischar(v)
    cls = 'char';
    data = double(v);
    prec = 'uint32';
elseif islogical(v)
    cls = 'logical';
    data = uint8(v);
    prec = 'uint8';
elseif isa(v, 'single')
    cls = 'single';
    data = v;
    prec = 'single';
else
    cls = class(v);
    data = double(v);
    prec = 'double';
end
symce_test_put_text(fid, cls);
fwrite(fid, [ndims(v) size(v)], 'int32');
fwrite(fid, data(:), prec);
end

function symce_test_put_text(fid, s)
fwrite(fid, numel(s), 'int32');
fwrite(fid, double(s), 'uint32');
end
""",
    "symce_test_put_error.m": r"""
function symce_test_put_error(fid, key, err)
% record: key, kind 1 (error), identifier, message
fwrite(fid, [key 1], 'int32');
fwrite(fid, numel(err.identifier), 'int32');
fwrite(fid, double(err.identifier), 'uint32');
fwrite(fid, numel(err.message), 'int32');
fwrite(fid, double(err.message), 'uint32');
end
""",
    "symce_test_fd.m": r"""
function J = symce_test_fd(f, x, rel)
% central differences: J(:, i) = d f(x)(:) / d x(i), step rel * max(1, |x(i)|)
f0 = f(x);
J = zeros(numel(f0), numel(x));
for i = 1:numel(x)
    h = rel * max(1, abs(x(i)));
    xp = x;
    xm = x;
    xp(i) = x(i) + h;
    xm(i) = x(i) - h;
    J(:, i) = (double(reshape(f(xp), [], 1)) - double(reshape(f(xm), [], 1))) / (xp(i) - xm(i));
end
end
""",
}


@dataclass
class Result:
    """What one call gave: its values (MATLAB shapes) and classes, or the error it raised."""

    values: list = field(default_factory=list)
    classes: list = field(default_factory=list)
    error_id: str | None = None
    error_message: str | None = None

    @property
    def value(self):
        self.check()
        return self.values[0]

    def check(self):
        if self.error_id is not None or self.error_message is not None:
            raise AssertionError(f"Octave raised {self.error_id!r}: {self.error_message}")
        return self


class Batch:
    """Calls to run in one Octave process; inputs are registered with :meth:`arg`."""

    def __init__(self, paths=(MATLAB_DIR,)):
        self.paths = [Path(p) for p in paths]
        self._data = []  # raw bytes of the inputs, in the order the script reads them
        self._lines = []
        self._nargs = 0
        self._ncalls = 0

    def arg(self, a) -> str:
        """Register an input (NumPy array in MATLAB shape, bit-exact); returns its variable."""
        a = np.asarray(a)
        if a.dtype not in _DTYPE_CLASS:
            raise TypeError(f"unsupported dtype {a.dtype}")
        cls = _DTYPE_CLASS[a.dtype]
        shape = a.shape if a.ndim >= 2 else ((1, a.size) if a.ndim == 1 else (1, 1))
        self._data.append(np.asarray(a, dtype=_CLASSES[cls]).ravel(order="F").tobytes())
        name = f"in{self._nargs}"
        self._nargs += 1
        dims = " ".join(str(d) for d in shape)
        self._lines.append(f"{name} = symce_test_get(fin, '{cls}', [{dims}]);")
        return name

    def call(self, expr: str, *args, nout: int = 1) -> int:
        """Evaluate ``expr % args`` with ``nout`` outputs; returns the key of its result."""
        key = self._ncalls
        self._ncalls += 1
        code = expr % args if args else expr
        outs = ", ".join(f"o{i}" for i in range(1, nout + 1))
        put = f"symce_test_put(fout, {key}, {outs});" if nout else f"symce_test_put(fout, {key});"
        lhs = f"[{outs}] = " if nout else ""
        self._lines.append(
            f"try\n  {lhs}{code};\n  {put}\ncatch err\n"
            f"  symce_test_put_error(fout, {key}, err);\nend"
        )
        return key

    def script(self, infile: str, outfile: str) -> str:
        head = [f"addpath('{p}');" for p in self.paths]
        head += [
            f"fin = fopen('{infile}', 'r', 'ieee-le');",
            f"fout = fopen('{outfile}', 'w', 'ieee-le');",
        ]
        return "\n".join(head + self._lines + ["fclose(fin);", "fclose(fout);", ""])

    def run(self, octave: str, timeout: float = 300) -> dict:
        """Run every call in one octave-cli process; {key: Result}."""
        with tempfile.TemporaryDirectory(prefix="symce_octave_") as tmp:
            tmp = Path(tmp)
            for name, text in _HELPERS.items():
                (tmp / name).write_text(text.lstrip())
            (tmp / "inputs.bin").write_bytes(b"".join(self._data))
            (tmp / "batch_main.m").write_text(self.script("inputs.bin", "outputs.bin"))
            proc = subprocess.run(
                [octave, *OCTAVE_FLAGS, "batch_main.m"],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            out = tmp / "outputs.bin"
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(
                    f"octave-cli failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
                )
            results = _parse(out.read_bytes())
        missing = set(range(self._ncalls)) - set(results)
        if missing:
            raise RuntimeError(f"no result for calls {sorted(missing)[:10]}")
        return results


def _parse(buf: bytes) -> dict:
    pos = 0

    def ints(n):
        nonlocal pos
        v = np.frombuffer(buf, "<i4", n, pos)
        pos += 4 * n
        return [int(x) for x in v]

    def text():
        nonlocal pos
        (n,) = ints(1)
        v = np.frombuffer(buf, "<u4", n, pos)
        pos += 4 * n
        return "".join(map(chr, v))

    results = {}
    while pos < len(buf):
        key, kind = ints(2)
        res = Result()
        if kind == 1:
            res.error_id, res.error_message = text(), text()
        else:
            (count,) = ints(1)
            for _ in range(count):
                cls = text()
                (nd,) = ints(1)
                shape = tuple(ints(nd))
                n = int(np.prod(shape))
                if cls == "char":
                    v = np.frombuffer(buf, "<u4", n, pos)
                    pos += 4 * n
                    res.values.append(
                        "".join(map(chr, v.reshape(shape, order="F").T.ravel())) if n else ""
                    )
                else:
                    dt = {"single": "<f4", "logical": "u1"}.get(cls, "<f8")
                    v = np.frombuffer(buf, dt, n, pos)
                    pos += v.itemsize * n
                    v = v.reshape(shape, order="F").astype(np.dtype(dt).newbyteorder("="))
                    res.values.append(v.astype(bool) if cls == "logical" else v)
                res.classes.append(cls)
        results[key] = res
    return results


# ----------------------------------------------------------------------------------------------
# Layout: NumPy-layout arguments and PyTorch-keyword options <-> a MATLAB call and its results.
# ----------------------------------------------------------------------------------------------
MATLAB_OPTION = {
    "weight": "Weight",
    "ignore_index": "IgnoreIndex",
    "label_smoothing": "LabelSmoothing",
    "pos_weight": "PosWeight",
    "reduction": "Reduction",
}


def _family(name):
    from symce import kernels

    return kernels.kernel(name).family


def matlab_args(
    batch: Batch, name: str, args, opts=None, label_class=np.float64, labels_as_column=False
) -> str:
    """The MATLAB argument list for kernel ``name`` called with NumPy-layout ``args``.

    Batches ``(N, K)`` become ``K x N``; integer labels become 1-based (of class ``label_class``,
    a row, or a column with ``labels_as_column``), except a label equal to ignore_index, which
    becomes MATLAB's ignore_index; ``opts`` are PyTorch keywords (weight, ignore_index,
    label_smoothing, pos_weight, reduction); an ignore_index that is a class (>= 0) is shifted to
    1-based too.
    """
    fam = _family(name)
    ignore = int((opts or {}).get("ignore_index", -100))
    out = []
    for a in args:
        a = np.asarray(a)
        if a.dtype.kind in "iu":  # labels; an ignored one stays ignored
            lab = a.astype(np.int64)
            lab = np.where(lab == ignore, ignore + 1 if ignore >= 0 else ignore, lab + 1)
            lab = lab.astype(label_class)
            out.append(batch.arg(lab.reshape(-1, 1) if labels_as_column else lab.reshape(1, -1)))
        elif a.ndim >= 2 or fam in ("rowwise", "ce_probs", "ce_logits"):
            out.append(batch.arg(np.atleast_2d(a).T))
        else:  # 0-D / 1-D element-wise input: a row
            out.append(batch.arg(a.reshape(1, -1)))
    from symce import kernels, options

    for key, val in (opts or {}).items():
        mname = (
            options.record(kernels.kernel(name), key).matlab
            if key not in MATLAB_OPTION
            else MATLAB_OPTION[key]
        )
        if key not in MATLAB_OPTION and isinstance(val, (bool, np.bool_)):  # a switch
            out.append(f"'{mname}', {'true' if val else 'false'}")
        elif key not in MATLAB_OPTION:  # a defined loss's option: a number
            out.append(f"'{mname}', {float(val)!r}")
        elif key == "reduction":
            out.append(f"'{mname}', '{val}'")
        elif key == "ignore_index":
            out.append(f"'{mname}', {int(val) + 1 if val >= 0 else int(val)}")
        elif key == "label_smoothing":
            out.append(f"'{mname}', {float(val)!r}")
        else:
            v = np.asarray(val)
            if v.ndim == 1:  # a class vector: along dimension 1
                v = v.reshape(-1, 1)
            elif v.ndim >= 2:
                v = v.T
            out.append(f"'{mname}', {batch.arg(v)}")
    return ", ".join(out)


def to_numpy_layout(name: str, value, output: str = "out", reduction: str = "mean", shape=None):
    """A MATLAB result of kernel ``name`` in NumPy's layout (what symce.reference returns).

    ``output`` is the registry's output name (out, loss, grad); ``shape`` the NumPy shape of the
    first input, for element-wise results.
    """
    fam = _family(name)
    v = np.asarray(value)
    if output == "loss" and reduction != "none":
        assert v.shape == (1, 1), f"{name}: a reduced loss must be 1x1, got {v.shape}"
        return v.reshape(())
    if name == "softmax_jacobian":
        k = v.shape[0]
        return np.moveaxis(v.reshape(k, k, -1, order="F"), 2, 0)
    if name == "logsumexp" or (output == "loss" and fam in ("ce_probs", "ce_logits")):
        assert v.ndim == 2 and v.shape[0] == 1, f"{name}: expected 1-by-N, got {v.shape}"
        return v.ravel()
    v = v.T
    return v.reshape(shape) if shape is not None else v


def term_scale(name: str, args, opts=None):
    """Magnitude of the terms a subtracting formula combines, per output element, or None.

    The Jacobian p_i(delta_ij - p_j), the VJP p_j(g_j - <g, p>) and the gradients p*sum(y~) - y~
    and w((1-y)sigma(x) - w+ y sigma(-x)) lose the leading digits of a result that is small next
    to its terms (in single precision, 1 - p for p = 0.9997 keeps 3 digits).  Their error bound is
    relative to the terms: p_i(delta_ij + p_j), p_j(|g_j| + sum_i |g_i| p_i), p*|sum y~| + |y~|
    (with the 'mean' divisor), w((1-y)sigma(x) + w+ y sigma(-x)) (divided by the count for
    'mean').  NumPy layout, float64 (a scale, not a reference).
    """
    from symce import reference

    opts = dict(opts or {})
    if name in (
        "softmax_jacobian",
        "softmax_vjp",
        "softmax_cross_entropy_grad",
        "softmax_cross_entropy_with_grad",
    ):
        z = np.atleast_2d(np.asarray(args[0], dtype=np.float64))
        p = np.asarray(reference.evaluate("softmax", z, form="closed"), dtype=np.float64)
        if name == "softmax_jacobian":
            return p[:, :, None] * (np.eye(z.shape[1])[None] + p[:, None, :])
        if name == "softmax_vjp":
            g = np.abs(np.asarray(args[1], dtype=np.float64))
            return p * (g + np.sum(g * p, axis=1, keepdims=True))
        rows, kept, divisor = reference._effective_targets(
            name,
            args[1],
            z.shape[1],
            opts.get("weight"),
            opts.get("ignore_index", -100),
            opts.get("label_smoothing", 0.0),
        )
        yt = np.array([[float(v) for v in row] for row in rows]).reshape(z.shape)
        scale = p * np.abs(yt.sum(axis=1, keepdims=True)) + np.abs(yt)
        if opts.get("reduction", "mean") == "mean":
            scale = scale / float(divisor) if divisor != 0 else scale * np.nan
        return scale
    if name in ("sigmoid_binary_cross_entropy_grad", "sigmoid_binary_cross_entropy_with_grad"):
        x = np.asarray(args[0], dtype=np.float64)
        y = np.asarray(args[1], dtype=np.float64)
        w = np.broadcast_to(np.asarray(opts.get("weight", 1.0), dtype=np.float64), x.shape)
        pw = np.broadcast_to(np.asarray(opts.get("pos_weight", 1.0), dtype=np.float64), x.shape)
        sig = 0.5 * (1 + np.tanh(x / 2))  # no overflow warnings
        scale = w * (np.abs(1 - y) * sig + pw * np.abs(y) * (1 - sig))
        return scale / x.size if opts.get("reduction", "mean") == "mean" else scale
    return None


def errors(actual, reference, scale=None):
    """(worst relative error, worst ULPs) of ``actual`` against mpmath ``reference``.

    Non-finite values must match exactly (NaN for NaN, infinities with their sign).  With a
    ``scale`` (see :func:`term_scale`) each element's error is relative to max(|ref|, scale).
    An absolute error below the dtype's smallest normal number is underflow (e^-200 is 0 in
    single precision), not an error.
    """
    import mpmath

    with mpmath.workdps(40):  # at the default 15 digits the reference would round to a double
        return _errors(actual, reference, scale)


def _errors(actual, reference, scale):
    import mpmath

    from support import ulp_error

    actual = np.asarray(actual)
    ref = np.asarray(reference, dtype=object)
    if actual.shape != ref.shape:
        raise AssertionError(f"shape {actual.shape} != reference shape {ref.shape}")
    ulps = ulp_error(actual, ref)
    dtype = actual.dtype if actual.dtype.kind == "f" else np.dtype(np.float64)
    tiny = mpmath.mpf(float(np.finfo(dtype).tiny))
    scale = np.broadcast_to(
        np.asarray(0.0 if scale is None else scale, dtype=np.float64), actual.shape
    )
    worst = 0.0
    for a, r, s in zip(actual.ravel(), ref.ravel(), scale.ravel()):
        a, r = float(a), mpmath.mpf(r)
        if not (mpmath.isfinite(r) and np.isfinite(a)):
            same = (mpmath.isnan(r) and np.isnan(a)) or (mpmath.isinf(r) and a == float(r))
            if not same:
                return float("inf"), ulps
            continue
        den = max(abs(r), mpmath.mpf(float(s)) if np.isfinite(s) else 0, mpmath.mpf("1e-300"))
        worst = max(worst, float(max(abs(mpmath.mpf(a) - r) - tiny, 0) / den))
    return worst, ulps
