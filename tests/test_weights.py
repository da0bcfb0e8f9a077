import math

import numpy as np
import pandas as pd
import pytest

from crmlib.errors import UserError
from crmlib.weights import SAATY_RI, ahp_weights, entropy_weights


def test_ahp_consistent_matrix_gives_exact_ratios_and_cr_zero():
    # a = 2 b = 4 c: weights 4/7, 2/7, 1/7, lambda_max = n = 3, CI = CR = 0
    r = ahp_weights([[1, 2, 4], [1 / 2, 1, 2], [1 / 4, 1 / 2, 1]])
    assert r.weights == pytest.approx([4 / 7, 2 / 7, 1 / 7], abs=1e-9)
    assert r.lambda_max == pytest.approx(3.0, abs=1e-9)
    assert r.cr == pytest.approx(0.0, abs=1e-9)
    assert r.consistent


def test_ahp_3x3_inconsistent_hand_checked():
    # a12 = 3, a13 = 5, a23 = 3. For a 3x3 reciprocal matrix the eigenvector equals the row geometric
    # means: (15^(1/3), 1, 15^(-1/3)) = (2.46621, 1, 0.40548) / 3.87169 = (0.63699, 0.25828, 0.10473).
    # lambda_max = 1 + t + 1/t with t = (a13 / (a12 a23))^(1/3) = (5/9)^(1/3) = 0.82207 -> 3.03851.
    # CI = 0.03851 / 2 = 0.019256; Saaty RI(3) = 0.58 -> CR = 0.03320.
    r = ahp_weights([[1, 3, 5], [1 / 3, 1, 3], [1 / 5, 1 / 3, 1]])
    assert r.weights == pytest.approx([0.63699, 0.25828, 0.10473], abs=5e-5)
    assert r.lambda_max == pytest.approx(3.03851, abs=5e-5)
    assert r.ri == 0.58
    assert r.ci == pytest.approx(0.019256, abs=5e-6)
    assert r.cr == pytest.approx(0.03320, abs=5e-5)
    assert r.consistent


def test_ahp_very_inconsistent_flagged():
    # cyclic preferences: 1 > 2 (9), 2 > 3 (9), 3 > 1 (9): weights equal, CR far above 0.10
    r = ahp_weights([[1, 9, 1 / 9], [1 / 9, 1, 9], [9, 1 / 9, 1]])
    assert r.weights == pytest.approx([1 / 3] * 3, abs=1e-9)
    # lambda_max = 1 + t + 1/t with t = (1/9 / 81)^(1/3) = 1/9 -> 1 + 1/9 + 9 = 10.111; CR = 3.5556 / 0.58
    assert r.lambda_max == pytest.approx(1 + 1 / 9 + 9, abs=1e-6)
    assert r.cr == pytest.approx((1 + 1 / 9 + 9 - 3) / 2 / 0.58, abs=1e-6)
    assert not r.consistent


def test_saaty_ri_table():
    assert SAATY_RI[3:11] == (0.58, 0.90, 1.12, 1.24, 1.32, 1.41, 1.45, 1.49)


@pytest.mark.parametrize("bad", [
    [[1, 2], [2, 1]],          # not reciprocal
    [[1, -2], [-0.5, 1]],      # negative
    [[2, 2], [0.5, 1]],        # diagonal not 1
    [[1, 2, 3], [0.5, 1, 2]],  # not square
])
def test_ahp_rejects_bad_matrices(bad):
    with pytest.raises(UserError):
        ahp_weights(bad)


def test_entropy_weights_hand_checked():
    # A = 1,2,3 -> z = 0, .5, 1 -> p = 0, 1/3, 2/3 -> e = (ln3/3 + 2/3 ln 1.5) / ln 3 = 0.579380
    # B = 1,1,2 -> z = 0, 0, 1 -> p = 0, 0, 1 -> e = 0. d = (0.420620, 1); w = d / 1.420620
    df = pd.DataFrame({"A": [1, 2, 3], "B": [1, 1, 2], "C": [5, 5, 5]})
    e_a = (math.log(3) / 3 + 2 / 3 * math.log(1.5)) / math.log(3)
    assert e_a == pytest.approx(0.579380, abs=1e-6)
    w = entropy_weights(df)
    assert w["A"] == pytest.approx(0.296082, abs=1e-6)
    assert w["B"] == pytest.approx(0.703918, abs=1e-6)
    assert w["C"] == 0.0                    # no variation, no information
    assert w.sum() == pytest.approx(1.0)


def test_entropy_direction_and_missing():
    # a cost column reversed: A = 3,2,1 as cost is the same information as 1,2,3 as benefit
    df = pd.DataFrame({"A": [3, 2, 1, np.nan], "B": [1, 1, 2, np.nan]})
    w = entropy_weights(df, {"A": -1})
    assert w["A"] == pytest.approx(0.296082, abs=1e-6)


def test_entropy_all_constant_is_an_error():
    with pytest.raises(UserError):
        entropy_weights(pd.DataFrame({"A": [1, 1], "B": [2, 2]}))
