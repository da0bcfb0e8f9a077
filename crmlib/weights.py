"""Deriving indicator weights: AHP (pairwise comparisons) and the entropy-weight method.

AHP uses the principal right eigenvector of the pairwise matrix and Saaty's consistency ratio
``CR = CI / RI`` with ``CI = (lambda_max - n) / (n - 1)`` and Saaty's random index table (RI for n = 1..15,
Saaty 1980 / Saaty & Vargas: 0, 0, 0.58, 0.90, 1.12, 1.24, 1.32, 1.41, 1.45, 1.49, 1.51, 1.48, 1.56, 1.57,
1.59). A CR below 0.10 is conventionally acceptable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .errors import UserError

# Saaty's random consistency index, indexed by matrix size n (RI[n]); index 0 unused.
SAATY_RI = (None, 0.0, 0.0, 0.58, 0.90, 1.12, 1.24, 1.32, 1.41, 1.45, 1.49, 1.51, 1.48, 1.56, 1.57, 1.59)
CR_ACCEPTABLE = 0.10


@dataclass(frozen=True)
class AHPResult:
    weights: np.ndarray      # sums to 1, same order as the matrix rows
    lambda_max: float
    ci: float                # consistency index
    ri: float                # Saaty's random index for this n
    cr: float                # consistency ratio; 0 for n <= 2 (always consistent)

    @property
    def consistent(self) -> bool:
        return self.cr < CR_ACCEPTABLE


def ahp_weights(matrix, tol: float = 1e-6) -> AHPResult:
    """Weights from a positive reciprocal pairwise comparison matrix (a[i][j] = importance of i over j)."""
    a = np.asarray(matrix, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise UserError("AHP matrix must be square", hint="one row and one column per criterion")
    n = a.shape[0]
    if n >= len(SAATY_RI):
        raise UserError(f"AHP matrix has {n} criteria; Saaty's RI table covers at most {len(SAATY_RI) - 1}",
                        hint="group criteria into families and compare the families")
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise UserError("AHP matrix entries must be positive numbers")
    if not np.allclose(np.diag(a), 1.0, atol=tol):
        raise UserError("AHP matrix diagonal must be 1 (a criterion is as important as itself)")
    bad = np.argwhere(~np.isclose(a * a.T, 1.0, rtol=1e-3))
    if len(bad):
        i, j = bad[0]
        raise UserError(f"AHP matrix is not reciprocal: a[{i + 1}][{j + 1}] * a[{j + 1}][{i + 1}] != 1",
                        hint="enter a[j][i] = 1 / a[i][j]")
    vals, vecs = np.linalg.eig(a)
    k = int(np.argmax(vals.real))
    lam = float(vals[k].real)
    w = np.abs(vecs[:, k].real)
    w = w / w.sum()
    ri = SAATY_RI[n]
    ci = (lam - n) / (n - 1) if n > 1 else 0.0
    ci = max(ci, 0.0)  # lambda_max >= n in exact arithmetic; clip float noise
    cr = ci / ri if ri else 0.0
    return AHPResult(weights=w, lambda_max=lam, ci=ci, ri=ri, cr=cr)


def entropy_weights(values: pd.DataFrame, directions: dict[str, int] | None = None) -> pd.Series:
    """Entropy-weight method over the columns of ``values`` (rows = customers).

    Each column is min-max normalised (direction -1 flips it so larger is better), p_ij = x_ij / sum_i x_ij,
    e_j = -sum_i p_ij ln p_ij / ln m (0 ln 0 = 0), d_j = 1 - e_j, w_j = d_j / sum d. Missing values are
    left out of their column's sums. A column with no variation (or fewer than two values) gets weight 0.
    """
    directions = directions or {}
    d = {}
    for col in values.columns:
        x = pd.to_numeric(values[col], errors="coerce").dropna().to_numpy(dtype=float)
        lo, hi = (x.min(), x.max()) if len(x) else (0.0, 0.0)
        if len(x) < 2 or hi == lo:
            d[col] = 0.0
            continue
        z = (x - lo) / (hi - lo)
        if directions.get(col, 1) < 0:
            z = 1.0 - z
        p = z / z.sum()
        nz = p[p > 0]
        e = -(nz * np.log(nz)).sum() / np.log(len(x))
        d[col] = max(1.0 - e, 0.0)
    div = pd.Series(d, dtype=float)
    total = div.sum()
    if total <= 0:
        raise UserError("entropy weights undefined: no indicator varies across customers")
    return div / total
