"""The per-row programs (symce.program): well formed, built from the registry's slots, and
printed by each language (a printer tier: small string checks; the numbers are the numeric,
option and bad-input tests' business)."""

from __future__ import annotations

import pytest

from symce import describe, program
from symce import kernels as kr
from symce.lang import c_backend, matlab_backend, numpy_backend

LOSSES = [
    (name, v.target)
    for name, d in describe.descriptions().items()
    if d.family in program.LOWER
    for v in d.variants
]
# what a program may read without binding it: the options and the class count
GIVEN = {"label_smoothing", "K"}
# what the row statistics of logits bind (symce.kernels: the rowwise scheme)
ROW_STATS = {"z", "shift", "zs", "zlo", "e", "em1", "Srest", "p", "pc"}


def _program(name, target):
    desc = describe.describe(name)
    (variant,) = [v for v in desc.variants if v.target == target]
    return program.program(name, variant)


def test_only_the_lowered_families_have_programs():
    with pytest.raises(ValueError, match="no per-row program"):
        program.program("sigmoid", describe.describe("sigmoid").variants[0])
    assert set(program.LOWER) == {"rowwise", "ce_probs", "ce_logits", "bce"}


@pytest.mark.parametrize("name, target", LOSSES, ids=[f"{n}-{t}" for n, t in LOSSES])
def test_every_step_reads_only_what_earlier_steps_bind(name, target):
    prog = _program(name, target)
    bound = set(GIVEN) | {o.name for o in kr.kernel(name).scalars}  # parameters
    for st in prog.all_steps:
        if isinstance(st, program.RowStats):
            bound |= ROW_STATS
            continue
        if isinstance(st, program.Pair):
            bound |= {"p_i", "p_j", "pc_i", "delta"}
            continue
        expr = getattr(st, "expr", None)
        if expr is not None:
            free = {s.name for s in expr.free_symbols}
            assert free <= bound, f"{name} {target}: {st} reads {sorted(free - bound)}"
        if hasattr(st, "name"):
            bound.add(st.name)


CE_LOSSES = [(n, t) for n, t in LOSSES if kr.kernel(n).family in describe.CE_FAMILIES]
ROWWISE = [n for n, t in LOSSES if kr.kernel(n).family == "rowwise"]
BCE = [n for n, t in LOSSES if kr.kernel(n).family == "bce"]


@pytest.mark.parametrize("name", ROWWISE)
def test_row_programs_store_the_output_at_the_layouts_scope(name):
    prog = _program(name, "")
    layout = describe.describe(name).layout
    (store,) = prog.stores()
    assert store.scope == {"scalar": "row", "jacobian": "pair"}.get(layout, "class")
    assert store.expr == kr.kernel(name).slots.get("out", kr.p)
    assert any(isinstance(st, program.RowStats) for st in prog.steps)
    assert [st.name for st in prog.steps if isinstance(st, program.Load)] == [
        a.name for a in kr.kernel(name).inputs
    ]


@pytest.mark.parametrize("name", BCE)
def test_bce_programs_store_the_weighted_slots_per_element(name):
    prog = _program(name, "")
    kern = kr.kernel(name)
    assert prog.target_steps == () and not prog.skips
    roles = [st.role for st in prog.steps if isinstance(st, program.Load)]
    assert roles == ["in", "target", "weight"] + (
        ["pos_weight"] if "pos_weight" in kern.options else []
    )
    stores = prog.stores()
    assert [st.output for st in stores] == [o.name for o in kern.outputs]
    for st in stores:  # one per element, the weight outside the finished term
        assert st.scope == "class" and st.weight == kr.w and st.expr == kern.slots[st.output]


@pytest.mark.parametrize("name, target", CE_LOSSES, ids=[f"{n}-{t}" for n, t in CE_LOSSES])
def test_programs_are_the_registrys_slots(name, target):
    prog = _program(name, target)
    kern, desc = kr.kernel(name), describe.describe(name)
    lets = {st.name: st.expr for st in prog.all_steps if isinstance(st, program.Let)}
    assert lets == {"yt": kern.slots["yt_soft" if target == "soft" else "yt_label"]}
    stores = {st.output: st for st in prog.stores()}
    assert tuple(sorted(stores)) == tuple(sorted(desc.stores))
    if "grad" in stores:
        assert stores["grad"].expr == kern.slots["grad"] and stores["grad"].scope == "class"
    if "loss" in stores:
        (total,) = [s for s in prog.steps if isinstance(s, program.RowSum) and s.name == "row_loss"]
        assert total.expr == kern.slots["loss_term"] and stores["loss"].scope == "row"
    # ignored rows exist only with labels; probability targets are read per class
    assert prog.skips == (target == "labels")
    assert bool(prog.loads("target")) == (target == "soft")
    sums = {st.name for st in prog.steps if isinstance(st, program.RowSum)}
    assert ("ysum" in sums) == (desc.family == "ce_logits" and desc.needs_ysum and desc.has_grad)


def test_c_prints_the_cross_entropy_program():
    fn = next(f for f in c_backend.functions() if f.cname == "symce_cross_entropy_f32")
    lines = c_backend._function_context(fn)["program"]
    assert "const int64_t t = labels[i];" in lines["row"]
    assert any(line.startswith("if (t == ignore_index)") for line in lines["row"])
    # the weights' NULL tested once per row: a loop that reads them and one that takes 1, each
    # with the one-hot by a conversion (no branch in the class loop: it vectorises)
    classes = lines["classes"]
    assert classes[0] == "if (weight != NULL) {" and "} else {" in classes
    body = [line.strip() for line in classes]
    assert body.count("const double hot = (double)(j == (size_t)t);") == 2
    assert "const double w_k = (double)weight[j];" in body and "const double w_k = 1;" in body
    assert not any("?" in line for line in body)
    assert sum(line.startswith("row_loss += ") for line in body) == 2
    assert lines["finish"] == [
        "if (reduction != SYMCE_REDUCTION_NONE) *loss = symce_reduce_f32(reduction, total, divisor);"
    ]
    soft = next(f for f in c_backend.functions() if f.cname == "symce_cross_entropy_grad_soft_f64")
    lines = c_backend._function_context(soft)["program"]
    assert "const double *yrow = target + i * k;" in lines["row"]
    assert not any("ignore_index" in line for line in lines["row"])
    assert lines["classes"][-3].strip().startswith("grow[j] = (double)((")
    assert lines["finish"] == []


def test_c_prints_the_cross_entropy_from_logits_program():
    """C's cross-entropy from logits follows its program: the label's row head and skip, a
    chunked row sum per RowSum step (soft: y~ and the loss), the gradient store's fast loop and
    its slow path, and with labels the label's class once and no sum over y~ (it is closed)."""
    by_name = {f.cname: f for f in c_backend.functions()}
    rows = c_backend._function_context(by_name["symce_softmax_cross_entropy_with_grad_f32"])["rows"]
    lines = rows["output"].context["lines"]
    assert rows["row"][:2] == ["float *grow = grad + i * k;", "const int64_t t = labels[i];"]
    assert "const double ysum = " in " ".join(rows["per_row"]) and "double ysum;" not in lines
    assert lines[0] == "double row_loss = 0;" and lines[-1] == "}"
    assert "{  /* the label's class */" in lines and any("wsum" in line for line in rows["head"])
    assert rows["next_out"] == "i + 1 < n ? grow + k : NULL"
    assert rows["row_end"][0] == "if (reduction == SYMCE_REDUCTION_NONE) loss[i] = (float)row_loss;"
    soft = c_backend._function_context(by_name["symce_softmax_cross_entropy_grad_soft_f64"])
    lines = soft["rows"]["output"].context["lines"]
    assert lines[0] == "double ysum;  /* sum_c y~_c */" and "row_loss" not in " ".join(lines)
    assert lines.count("if (status == SYMCE_ROW_GENERAL) {") == 1
    assert soft["rows"]["finish"] == [] and "SYMCE_OMP_FOR" in soft["rows"]["head"]
    assert not any("wsum" in line for line in soft["rows"]["head"])
    # without a gradient: no scale, no prefetch of a gradient row, and no sum of the weights
    loss = c_backend._function_context(by_name["symce_softmax_cross_entropy_f64"])["rows"]
    assert loss["next_out"] == "NULL" and not any("scale" in line for line in loss["head"])
    assert not any("wsum" in line for line in loss["head"])


def test_numpy_and_matlab_print_both_target_branches():
    code = numpy_backend._program_code(kr.kernel("cross_entropy"))
    assert code["labels"][0].startswith("kept, hot, w_t, w_k, divisor = _label_parts(")
    assert code["labels"][-1] == "yt = _masked(yt, kept)" and code["soft"][0] == "kept = None"
    assert code["lines"][0].startswith("row_loss = np.sum(") and code["lines"][0].endswith(
        "axis=-1)"
    )
    stats = object()  # where the row statistics go
    code = matlab_backend._program_code(kr.kernel("softmax_cross_entropy_with_grad"), stats)
    assert "kept = t ~= ignore_index;" in code["labels"] and "divisor = N;" in code["soft"]
    assert code["lines"][:3] == [
        "z = reshape(double(logits), K, N);",
        stats,
        "ysum = pairwise_sum(yt);",
    ]
    assert "grad(:, ~kept) = 0;" in code["lines"] and "loss(~kept) = 0;" in code["lines"]
