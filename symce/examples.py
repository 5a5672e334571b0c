"""Stage 5 — kernels: one shared table of worked examples, each kernel's call and results.

The MATLAB help shows each kernel's example (``symce_softmax([-2.85; 0.86; 0.28])`` and what it
returns).  The results are written here to 4 significant digits, as the help prints them; the
tests run every example in Octave and compare (tests/test_matlab_kernels.py), so a result here that
a kernel no longer returns fails there.  No emitter evaluates a reference to write its docs.

Layout is MATLAB's: a column per sample (classes down the rows), labels 1-based.
"""

from __future__ import annotations

import numpy as np

# Inputs (numpy arrays in MATLAB shape; labels 1-based) and options.
_Z = np.array([[1.0], [2.0], [0.5]])  # 3 classes, 1 sample
_Z2 = np.array([[1.0, 0.0], [2.0, 0.0], [0.5, 3.0]])  # 3 classes, 2 samples
_P = np.array([[0.2], [0.7], [0.1]])
EXAMPLES = {
    "sigmoid": ((np.array([[-1.0, 0.0, 2.0]]),), {}),
    "sigmoid_grad": ((np.array([[-1.0, 0.0, 2.0]]),), {}),
    "softmax": ((np.array([[-2.85], [0.86], [0.28]]),), {}),
    "log_softmax": ((_Z2,), {}),
    "logsumexp": ((_Z2,), {}),
    "softmax_jacobian": ((_Z,), {}),
    "softmax_vjp": ((_Z, np.array([[1.0], [0.0], [0.0]])), {}),
    "cross_entropy": ((_P, np.array([2])), {}),
    "cross_entropy_grad": ((_P, np.array([2])), {}),
    "softmax_cross_entropy": ((_Z, np.array([2])), {}),
    "softmax_cross_entropy_grad": ((_Z2, np.array([2, 3])), {"label_smoothing": 0.1}),
    "softmax_cross_entropy_with_grad": ((_Z2, np.array([2, 3])), {"weight": [1.0, 2.0, 1.0]}),
    "binary_cross_entropy": ((np.array([[0.9, 0.2]]), np.array([[1.0, 0.0]])), {}),
    "binary_cross_entropy_grad": ((np.array([[0.9, 0.2]]), np.array([[1.0, 0.0]])), {}),
    "sigmoid_binary_cross_entropy": (
        (np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]])),
        {"pos_weight": 3.0},
    ),
    "sigmoid_binary_cross_entropy_grad": (
        (np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]])),
        {"reduction": "sum"},
    ),
    "sigmoid_binary_cross_entropy_with_grad": (
        (np.array([[2.0, -1.0]]), np.array([[1.0, 0.0]])),
        {"pos_weight": 3.0, "reduction": "sum"},
    ),
}


# The results, in the order of the kernel's outputs, in the same layout (a loss is a scalar).
RESULTS = {
    "sigmoid": (np.array([[0.2689, 0.5, 0.8808]]),),
    "sigmoid_grad": (np.array([[0.1966, 0.25, 0.105]]),),
    "softmax": (np.array([[0.01545], [0.6312], [0.3534]]),),
    "log_softmax": (np.array([[-1.464, -3.095], [-0.4644, -3.095], [-1.964, -0.09492]]),),
    "logsumexp": (np.array([[2.464, 3.095]]),),
    "softmax_jacobian": (
        np.array(
            [[0.1778, -0.1453, -0.03243], [-0.1453, 0.2335, -0.08815], [-0.03243, -0.08815, 0.1206]]
        ),
    ),
    "softmax_vjp": (np.array([[0.1778], [-0.1453], [-0.03243]]),),
    "cross_entropy": (0.3567,),
    "cross_entropy_grad": (np.array([[0.0], [-1.429], [0.0]]),),
    "softmax_cross_entropy": (0.4644,),
    "softmax_cross_entropy_grad": (
        np.array([[0.09895, 0.005973], [-0.1524, 0.005973], [0.05346, -0.01195]]),
    ),
    "softmax_cross_entropy_with_grad": (
        0.3412,
        np.array([[0.1541, 0.01509], [-0.2476, 0.01509], [0.0935, -0.03019]]),
    ),
    "binary_cross_entropy": (0.1643,),
    "binary_cross_entropy_grad": (np.array([[-0.5556, 0.625]]),),
    "sigmoid_binary_cross_entropy": (0.347,),
    "sigmoid_binary_cross_entropy_grad": (np.array([[-0.1192, 0.2689]]),),
    "sigmoid_binary_cross_entropy_with_grad": (
        0.694,
        np.array([[-0.3576, 0.2689]]),
    ),
}
