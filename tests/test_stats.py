"""rnnexp.stats: effects, bootstrap intervals and tests checked against hand computations."""
from __future__ import annotations

import math
from itertools import combinations, product

import numpy as np
import pytest
from scipy import stats as scipy_stats

from rnnexp.stats import (
    LEVEL,
    SEED,
    Effect,
    bootstrap,
    compare_bootstrapped,
    paired,
    unpaired,
)


def _clear_pair(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """b is a * 1.2 with 1 % noise: a is clearly lower than b."""
    rng = np.random.default_rng(1)
    a = rng.lognormal(0.0, 0.3, n)
    b = a * 1.2 * np.exp(rng.normal(0.0, 0.01, n))
    return a, b


def _noise_pair(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """a and b drawn from the same distribution."""
    rng = np.random.default_rng(7)
    return rng.lognormal(0.0, 0.3, n), rng.lognormal(0.0, 0.3, n)


# ------------------------------------------------------------------------ effect and verdict


def test_clear_ratio_effect_is_called_lower():
    a, b = _clear_pair()
    e = paired(a, b)
    by_hand = np.prod(a / b) ** (1 / len(a))  # geometric mean of the per-seed ratios
    assert e.estimate == pytest.approx(by_hand, rel=1e-12)
    assert e.estimate == pytest.approx(1 / 1.2, rel=0.02)
    assert e.high < 1 and e.low < e.estimate < e.high
    assert e.direction == -1 and not e.too_close
    assert e.p < 0.01
    assert (e.n, e.scale, e.test, e.n_b, e.level) == (10, "ratio", "Wilcoxon signed-rank", None,
                                                      LEVEL)
    # the other way round: a/b becomes b/a, direction flips
    r = paired(b, a)
    assert r.estimate == pytest.approx(1 / e.estimate, rel=1e-12)
    assert r.direction == 1 and r.p == e.p


def test_clear_difference_effect():
    a, b = _clear_pair()
    e = paired(a, b, scale="difference")
    assert e.estimate == pytest.approx(np.mean(a - b), rel=1e-12)
    assert e.high < 0 and e.direction == -1
    assert e.test == "sign-flip permutation"
    assert e.p == 2 / 2**10  # exact: only all-minus and all-plus patterns are as extreme


def test_pure_noise_is_too_close():
    a, b = _noise_pair()
    for e in (paired(a, b), paired(a, b, scale="difference"), unpaired(a, b),
              unpaired(a, b, scale="difference")):
        assert e.too_close and e.direction == 0
        assert e.low <= e.no_effect <= e.high
        assert e.p > 0.05


def test_unpaired_estimate_is_ratio_of_geometric_means():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(0.0, 0.2, 8), rng.lognormal(0.5, 0.2, 6)
    e = unpaired(a, b)
    by_hand = np.prod(a) ** (1 / 8) / np.prod(b) ** (1 / 6)
    assert e.estimate == pytest.approx(by_hand, rel=1e-12)
    assert (e.n, e.n_b) == (8, 6)
    assert e.direction == -1 and e.p < 0.01
    d = unpaired(a, b, scale="difference")
    assert d.estimate == pytest.approx(a.mean() - b.mean(), rel=1e-12)


# ---------------------------------------------------------------------- bootstrap vs a loop


def test_percentile_interval_matches_loop_bootstrap():
    a, b = _noise_pair(7)
    d = np.log(a) - np.log(b)
    n, n_boot = len(d), 2000
    rng = np.random.default_rng(SEED)  # the same generator draws, one replicate at a time
    means = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, size=n)
        means.append(sum(d[i] for i in idx) / n)
    low, high = np.quantile(means, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])

    e = paired(a, b, n_boot=n_boot)
    assert math.log(e.low) == pytest.approx(low, abs=1e-12)
    assert math.log(e.high) == pytest.approx(high, abs=1e-12)

    est, lo, hi = bootstrap(lambda ix: d[ix].mean(axis=1), n, n_boot=n_boot)
    assert (est, lo, hi) == pytest.approx((d.mean(), low, high), abs=1e-12)


def test_unpaired_bootstrap_matches_loop():
    rng0 = np.random.default_rng(5)
    a, b = rng0.normal(10, 1, 5), rng0.normal(11, 1, 4)
    n_boot = 1000
    rng = np.random.default_rng(SEED)
    idx_a = [rng.integers(0, 5, size=5) for _ in range(n_boot)]  # all of a's rows, then b's
    idx_b = [rng.integers(0, 4, size=4) for _ in range(n_boot)]
    diffs = [a[i].mean() - b[j].mean() for i, j in zip(idx_a, idx_b)]
    low, high = np.quantile(diffs, [0.025, 0.975])
    e = unpaired(a, b, scale="difference", n_boot=n_boot)
    assert (e.low, e.high) == pytest.approx((low, high), abs=1e-12)


def test_bootstrap_calls_statistic_with_original_then_resampled_rows():
    shapes = []

    def stat(idx):
        shapes.append(idx.copy())
        return idx.sum(axis=1)

    est, low, high = bootstrap(stat, 4, n_boot=50)
    assert np.array_equal(shapes[0], [[0, 1, 2, 3]])
    assert shapes[1].shape == (50, 4) and shapes[1].min() >= 0 and shapes[1].max() <= 3
    assert est == 6 and low <= high
    with pytest.raises(ValueError, match="must return shape"):
        bootstrap(lambda idx: np.zeros(3), 4, n_boot=50)


# -------------------------------------------------------------------------- exact p-values


def _sign_flip_by_hand(d):
    observed = abs(sum(d) / len(d))
    hits = [abs(sum(s * x for s, x in zip(signs, d)) / len(d)) >= observed - 1e-12
            for signs in product((1, -1), repeat=len(d))]
    return sum(hits) / len(hits)


def test_exact_sign_flip_p_by_hand():
    # n = 5 and every difference of the same sign: only 2 of 32 patterns are as extreme
    e = paired([2.0, 3, 4, 5, 6], [1.0, 1, 1, 1, 1], scale="difference")
    assert e.p == 2 / 32 == 0.0625
    d = np.array([0.5, -0.2, 1.3, 0.7, -0.1, 0.9])
    e = paired(d + 10, np.full(6, 10.0), scale="difference")
    assert e.p == pytest.approx(_sign_flip_by_hand(list(d)), abs=1e-15)


def test_sign_flip_monte_carlo_above_16_pairs():
    rng = np.random.default_rng(11)
    a = rng.normal(0, 1, 30)
    e = paired(a + 0.5, a + rng.normal(0, 0.5, 30), scale="difference")
    assert "random flips" in e.test
    assert 0 < e.p <= 1


def test_wilcoxon_p_matches_scipy():
    a, b = _noise_pair(12)
    e = paired(a, b)
    expected = scipy_stats.wilcoxon(np.log(a) - np.log(b)).pvalue
    assert e.p == pytest.approx(expected, rel=1e-12)
    a, b = _clear_pair(8)
    assert paired(a, b).p == pytest.approx(scipy_stats.wilcoxon(np.log(a / b)).pvalue, rel=1e-9)


def test_zero_differences_give_p_one():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    for scale in ("ratio", "difference"):
        e = paired(a, a, scale=scale)
        assert e.p == 1.0 and e.too_close and e.low == e.high == e.no_effect


def test_unpaired_permutation_p_by_hand():
    a, b = [1.0, 2.5, 3.0], [2.0, 4.0, 5.0, 6.5]
    pooled = a + b
    observed = abs(np.mean(a) - np.mean(b))
    hits = []
    for group in combinations(range(7), 3):
        ga = [pooled[i] for i in group]
        gb = [pooled[i] for i in range(7) if i not in group]
        hits.append(abs(sum(ga) / 3 - sum(gb) / 4) >= observed - 1e-12)
    e = unpaired(a, b, scale="difference")
    assert e.test == "permutation"
    assert e.p == pytest.approx(sum(hits) / len(hits), abs=1e-15)  # 35 splits
    # the ratio scale permutes the log values
    logs = np.log(pooled)
    obs_log = abs(logs[:3].mean() - logs[3:].mean())
    hits = [abs(logs[list(g)].mean() - np.delete(logs, list(g)).mean()) >= obs_log - 1e-12
            for g in combinations(range(7), 3)]
    assert unpaired(a, b).p == pytest.approx(sum(hits) / 35, abs=1e-15)


def test_unpaired_random_permutations_when_too_many_splits():
    rng = np.random.default_rng(2)
    e = unpaired(rng.normal(0, 1, 15), rng.normal(0, 1, 15), scale="difference")
    assert "random" in e.test and 0 < e.p <= 1


# ----------------------------------------------------------- multi-cell bootstrap statistics


def _table():
    rng = np.random.default_rng(4)
    published = np.array([0.5, 1.2, 3.0, 0.08])
    values = published[:, None] * rng.lognormal(0.0, 0.2, (4, 6))  # (cells, seeds)
    return values, published


def _median_log_error(values, published):
    def stat(idx):
        means = values[:, idx].mean(axis=2)  # (cells, k)
        return np.median(np.abs(np.log10(means) - np.log10(published)[:, None]), axis=0)

    return stat


def test_bootstrap_multi_cell_statistic():
    values, published = _table()
    stat = _median_log_error(values, published)
    est, low, high = bootstrap(stat, 6)
    by_hand = np.median(np.abs(np.log10(values.mean(axis=1)) - np.log10(published)))
    assert est == pytest.approx(by_hand, rel=1e-12)
    assert 0 <= low <= high


def test_compare_bootstrapped_shares_resamples():
    values, published = _table()
    stat = _median_log_error(values, published)
    same = compare_bootstrapped(stat, stat, 6)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    assert same.too_close and same.direction == 0 and same.p == 1.0
    assert (same.scale, same.test, same.n) == ("difference", "bootstrap", 6)
    # a constant offset survives only if both statistics see the same resamples
    shifted = compare_bootstrapped(stat, lambda idx: stat(idx) + 0.1, 6)
    assert shifted.estimate == pytest.approx(-0.1)
    assert shifted.low == pytest.approx(-0.1) and shifted.high == pytest.approx(-0.1)
    assert shifted.direction == -1 and shifted.p == 0.0


def test_compare_bootstrapped_better_fit_and_p():
    values, published = _table()
    good = _median_log_error(values, published)
    bad = _median_log_error(values, published * 1.5)  # a reading that is off by 50 %
    e = compare_bootstrapped(good, bad, 6, n_boot=2000)
    est, low, high = bootstrap(lambda idx: good(idx) - bad(idx), 6, n_boot=2000)
    assert (e.estimate, e.low, e.high) == (est, low, high)
    assert e.direction == -1 and e.p < 0.01


# ---------------------------------------------------------------- reproducibility, edge cases


def test_reproducible_bit_for_bit():
    a, b = _noise_pair(20)
    assert paired(a, b) == paired(a, b)
    assert paired(a, b, scale="difference") == paired(a, b, scale="difference")
    assert unpaired(a, b[:15]) == unpaired(a, b[:15])
    assert paired(a, b, seed=1) != paired(a, b)
    values, published = _table()
    stat = _median_log_error(values, published)
    assert bootstrap(stat, 6) == bootstrap(stat, 6)


def test_nan_pairs_dropped():
    a, b = _clear_pair()
    a_nan, b_nan = a.copy(), b.copy()
    a_nan[2], b_nan[5] = np.nan, np.nan
    keep = [i for i in range(10) if i not in (2, 5)]
    assert paired(a_nan, b_nan) == paired(a[keep], b[keep])
    assert paired(a_nan, b_nan).n == 8
    assert unpaired(a_nan, b).n == 9


def test_one_seed_cannot_be_called():
    e = paired([1.0], [2.0])
    assert e.estimate == 0.5 and e.n == 1
    assert math.isnan(e.low) and math.isnan(e.high) and math.isnan(e.p)
    assert e.too_close and e.direction == 0
    u = unpaired([1.0, 1.1, 0.9], [2.0])
    assert math.isnan(u.p) and u.too_close
    c = compare_bootstrapped(lambda idx: idx.sum(axis=1), lambda idx: idx.sum(axis=1) + 1, 1)
    assert c.estimate == -1 and math.isnan(c.p) and c.too_close


def test_bad_input_raises_naming_the_value():
    with pytest.raises(ValueError, match=r"a\[2\] = -1\.0"):
        paired([1.0, 2.0, -1.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"b\[0\] = 0\.0"):
        unpaired([1.0, 2.0], [0.0, 1.0])
    with pytest.raises(ValueError, match=r"len\(a\) = 3 but len\(b\) = 2"):
        paired([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"a\[1\] = inf"):
        paired([1.0, np.inf], [1.0, 2.0], scale="difference")
    with pytest.raises(ValueError, match="scale"):
        paired([1.0, 2.0], [1.0, 2.0], scale="log")
    # zero and negative values are fine for a difference
    assert paired([0.0, -1.0], [1.0, 1.0], scale="difference").estimate == -1.5


# --------------------------------------------------------------------------------- describe


def test_describe_exact_wording():
    clear = Effect(estimate=0.968, low=0.95, high=0.989, n=10, p=2 / 1024, scale="ratio",
                   test="Wilcoxon signed-rank")
    assert clear.describe("with bias", "without") == (
        "with bias 3.2 % lower than without (95 % CI 1.1 % to 5.0 % lower; "
        "n = 10, Wilcoxon p = 0.002)")
    diff = Effect(estimate=-12.5, low=-17.0, high=-8.0, n=10, p=0.002, scale="difference",
                  test="sign-flip permutation")
    assert diff.describe("RMSprop", "Adam", "epochs") == (
        "RMSprop 12.5 epochs fewer than Adam (95 % CI 8.0 to 17.0 fewer; "
        "n = 10, sign-flip p = 0.002)")
    close = Effect(estimate=0.997, low=0.98, high=1.015, n=10, p=0.43, scale="ratio",
                   test="Wilcoxon signed-rank")
    assert close.describe("with bias", "without") == (
        "too close to call: with bias 0.30 % lower than without "
        "(95 % CI 2.0 % lower to 1.5 % higher; n = 10, Wilcoxon p = 0.43)")
    up = Effect(estimate=1.25, low=1.1, high=1.4, n=6, p=0.0004, scale="ratio",
                test="permutation", n_b=5)
    assert up.describe("A", "B") == (
        "A 25.0 % higher than B (95 % CI 10.0 % to 40.0 % higher; n = 6 vs 5, "
        "permutation p < 0.001)")


def test_describe_from_computed_effects():
    a, b = _clear_pair()
    e = paired(a, b)
    text = e.describe("with bias", "without")
    assert text.startswith(f"with bias {(1 - e.estimate) * 100:.1f} % lower than without")
    assert f"{(1 - e.high) * 100:.1f} % to {(1 - e.low) * 100:.1f} % lower" in text
    assert "n = 10" in text and "Wilcoxon p = 0.002" in text
    n_a, n_b = _noise_pair()
    close = paired(n_a, n_b, scale="difference")
    text = close.describe("x", "y")
    assert text.startswith("too close to call: x ")
    assert "n = 10" in text and "sign-flip p = " in text and " lower to " in text
    one = paired([1.0], [2.0]).describe("A", "B")
    assert one.startswith("too close to call: A 50.0 % lower than B") and "no test" in one


def test_proportion_is_the_wilson_interval():
    from rnnexp.stats import proportion

    share, low, high = proportion(8, 10)
    assert share == 0.8 and low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert proportion(0, 20)[1] == 0.0 and proportion(20, 20)[2] == 1.0
    assert all(math.isnan(x) for x in proportion(0, 0))
    with pytest.raises(ValueError, match="k = 3"):
        proportion(3, 2)
