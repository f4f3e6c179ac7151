"""Statistics behind the REPORT.md verdicts: is setting A better than setting B, over several seeds?

Every experimental setting is trained with several random seeds. A verdict such as "with bias the
loss is 3 % lower" rests on three numbers computed here:

* an **estimate** of the effect, either a *ratio* a/b (the geometric mean of the per-seed ratios,
  i.e. the exponential of the mean log difference; right for losses, times and other positive
  quantities that vary multiplicatively) or a *difference* a - b (the mean difference; right for
  counts such as epochs to converge);
* a **bootstrap percentile interval** (``LEVEL`` = 95 %): the seeds are resampled with replacement
  ``N_BOOT`` times, the estimate is recomputed on every resample, and the middle 95 % of those
  values is the interval;
* a **p-value** of a test of "no effect" (Wilcoxon signed-rank, sign-flip permutation, label
  permutation or bootstrap, depending on the comparison).

A verdict is only called when the whole interval lies on one side of "no effect" (1 for a ratio,
0 for a difference); otherwise the two settings are *too close to call* with these seeds.

The bootstrap is vectorised: all resamples are one integer index matrix of shape ``(n_boot, n)``,
drawn from ``np.random.default_rng(seed)``, so results are reproducible bit for bit and no global
random state is touched.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "LEVEL",
    "N_BOOT",
    "SEED",
    "N_PERM",
    "MAX_EXACT_FLIPS",
    "Effect",
    "paired",
    "unpaired",
    "bootstrap",
    "compare_bootstrapped",
]

LEVEL = 0.95
"""Level of every interval (two-sided percentile interval)."""
N_BOOT = 10_000
"""Number of bootstrap replicates."""
SEED = 0
"""Default seed of the bootstrap's random generator."""
N_PERM = 20_000
"""Random sign flips / label permutations when an exact permutation test is too large."""
MAX_EXACT_FLIPS = 16
"""Paired sign-flip test: exact (all 2**n sign patterns) up to this many pairs."""

_SCALES = ("ratio", "difference")
_TOL = 1e-9  # relative tolerance when comparing a permuted statistic with the observed one

Statistic = Callable[[np.ndarray], ArrayLike]
"""A function of an index array of shape (k, n) that returns k values (see `bootstrap`)."""


# --------------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class Effect:
    """The effect of setting a against setting b, with its interval and test.

    Attributes:
        estimate: the effect on `scale`: a/b for "ratio", a - b for "difference".
        low, high: bootstrap percentile interval of the estimate at `level` (nan if not available).
        n: number of seeds (pairs for paired comparisons; seeds of sample a for unpaired ones).
        p: two-sided p-value of `test` (nan where n is too small for any test).
        scale: "ratio" or "difference".
        test: name of the test, e.g. "Wilcoxon signed-rank", "sign-flip permutation",
            "permutation", "bootstrap".
        n_b: unpaired comparisons only: number of seeds of sample b (None for paired ones).
        level: level of the interval (0.95 = 95 %).
    """

    estimate: float
    low: float
    high: float
    n: int
    p: float
    scale: str
    test: str
    n_b: int | None = None
    level: float = LEVEL

    @property
    def no_effect(self) -> float:
        """The value that means "no effect": 1 for a ratio, 0 for a difference."""
        return 1.0 if self.scale == "ratio" else 0.0

    @property
    def too_close(self) -> bool:
        """True when the interval includes "no effect" (or there is no interval at all)."""
        if math.isnan(self.low) or math.isnan(self.high):
            return True
        return self.low <= self.no_effect <= self.high

    @property
    def direction(self) -> int:
        """-1: the whole interval is below "no effect" (a lower than b); +1: above; 0: too close."""
        if self.too_close:
            return 0
        return -1 if self.high < self.no_effect else 1

    def describe(self, a: str, b: str, unit: str = "", *, below: str | None = None,
                 above: str | None = None) -> str:
        """One plain sentence fragment, e.g. (one per line)::

            with bias 3.2 % lower than without (95 % CI 1.1 % to 5.0 % lower;
                n = 10, Wilcoxon p = 0.002)
            RMSprop 12.5 epochs fewer than Adam (95 % CI 8.0 to 17.0 fewer;
                n = 10, sign-flip p = 0.002)
            too close to call: a 0.3 % lower than b (95 % CI 2.0 % lower to 1.5 % higher;
                n = 10, Wilcoxon p = 0.43)

        Sizes have 2-3 significant figures; an unpaired comparison reads "n = 10 vs 8".

        Args:
            a, b: names of the two settings.
            unit: unit of a difference ("epochs"); ignored for a ratio, which is in percent.
            below, above: words for "a is below / above b". Default "lower" / "higher", except for
                a difference with a unit: "fewer" / "more" (counts such as epochs).
        """
        if below is None or above is None:
            counted = self.scale == "difference" and bool(unit)
            below = below if below is not None else ("fewer" if counted else "lower")
            above = above if above is not None else ("more" if counted else "higher")

        def amount(value: float) -> tuple[str, int]:
            """Size of the effect `value` as text, and its side (-1 below, 0 none, +1 above)."""
            if self.scale == "ratio":
                size = abs(value - 1.0) * 100.0
            else:
                size = abs(value)
            side = 0 if value == self.no_effect else (-1 if value < self.no_effect else 1)
            return _fmt(size), side

        word = {-1: below, 1: above}
        pct = " %" if self.scale == "ratio" else ""
        size, side = amount(self.estimate)
        if math.isnan(self.estimate):
            head = f"{a} vs {b}: no estimate"
        elif side == 0:
            head = f"{a} the same as {b}"
        else:
            unit_text = pct if self.scale == "ratio" else (f" {unit}" if unit else "")
            head = f"{a} {size}{unit_text} {word[side]} than {b}"

        level = f"{self.level * 100.0:g} % CI"
        if math.isnan(self.low) or math.isnan(self.high):
            interval = f"no {level} (too few seeds)"
        else:
            (lo_size, lo_side), (hi_size, hi_side) = amount(self.low), amount(self.high)
            if lo_side == hi_side == 0:
                interval = f"{level} 0{pct} to 0{pct}"
            elif lo_side < 0 and hi_side < 0:  # both below: the far end (low) is the larger size
                interval = f"{level} {hi_size}{pct} to {lo_size}{pct} {below}"
            elif lo_side > 0 and hi_side > 0:
                interval = f"{level} {lo_size}{pct} to {hi_size}{pct} {above}"
            else:
                lo_text = f"{lo_size}{pct} {word[lo_side]}" if lo_side else f"0{pct}"
                hi_text = f"{hi_size}{pct} {word[hi_side]}" if hi_side else f"0{pct}"
                interval = f"{level} {lo_text} to {hi_text}"

        seeds = f"n = {self.n}" if self.n_b is None else f"n = {self.n} vs {self.n_b}"
        short = self.test.split()[0] if self.test else "test"
        if math.isnan(self.p):
            test = "no test"
        elif self.p < 0.001:
            test = f"{short} p < 0.001"
        else:
            test = f"{short} p = {self.p:.2g}"
        text = f"{head} ({interval}; {seeds}, {test})"
        return f"too close to call: {text}" if self.too_close else text


def _fmt(x: float) -> str:
    """A non-negative size with 2-3 significant figures: 0.012, 0.50, 3.2, 12.5, 17.0, 123."""
    if math.isnan(x):
        return "nan"
    if x == 0:
        return "0"
    if round(x, 1) >= 100:
        return f"{x:.0f}"
    if x >= 1:
        return f"{x:.1f}"
    digits = 1 - math.floor(math.log10(x))  # two significant figures
    text = f"{x:.{digits}f}"
    if float(text) >= 1:  # 0.996 rounds up to 1.0
        return "1.0"
    return text


# ------------------------------------------------------------------------------ the bootstrap


def bootstrap(statistic: Statistic, n: int, *, n_boot: int = N_BOOT, seed: int = SEED,
              level: float = LEVEL) -> tuple[float, float, float]:
    """Generic seed bootstrap, for a statistic of one or of many table cells at once.

    `statistic(idx)` receives an integer array `idx` of shape ``(k, n)``: row j lists which seed
    positions (0..n-1) make up the j-th resample. It must return k values, one per row. It is
    called twice: once with ``idx = arange(n)`` as shape ``(1, n)`` (the original seeds, for the
    estimate) and once with all ``n_boot`` resamples, drawn with replacement. Because every cell
    of a table is indexed by the same rows, all cells share the same resampled seeds.

    Example, the median over cells of |log10(mean over seeds) - log10(published)|, for ``values``
    of shape (cells, seeds) and ``published`` of shape (cells,)::

        def stat(idx):
            means = values[:, idx].mean(axis=2)          # (cells, k)
            err = np.abs(np.log10(means) - np.log10(published)[:, None])
            return np.median(err, axis=0)                # (k,)

    Returns:
        ``(estimate, low, high)``: the statistic on the original seeds and the percentile
        interval at `level`. With fewer than 2 seeds there is nothing to resample: low and high
        are nan.
    """
    estimate, replicates = _replicates(statistic, n, n_boot=n_boot, seed=seed, level=level)
    if replicates is None:
        return estimate, math.nan, math.nan
    low, high = _percentile_interval(replicates, level)
    return estimate, low, high


def compare_bootstrapped(statistic_a: Statistic, statistic_b: Statistic, n: int, *,
                         n_boot: int = N_BOOT, seed: int = SEED, level: float = LEVEL) -> Effect:
    """Compare two bootstrapped statistics on the SAME resampled seeds (paired by seed).

    The effect is ``statistic_a(idx) - statistic_b(idx)``; both are evaluated on the same index
    rows, so seed-to-seed noise shared by the two cancels out. Typical use: does reading A of a
    table fit the published numbers better (smaller error) than reading B, or is it too close?

    The p-value is the two-sided bootstrap p: twice the smaller of the shares of resampled
    differences that are <= 0 and >= 0, capped at 1 (nan with fewer than 2 seeds).
    """

    def difference(idx: np.ndarray) -> np.ndarray:
        return _values(statistic_a, idx) - _values(statistic_b, idx)

    estimate, diffs = _replicates(difference, n, n_boot=n_boot, seed=seed, level=level)
    low = high = p = math.nan
    if diffs is not None:
        low, high = _percentile_interval(diffs, level)
        p = min(1.0, 2.0 * min(float(np.mean(diffs <= 0)), float(np.mean(diffs >= 0))))
    return Effect(estimate=estimate, low=low, high=high, n=int(n), p=p, scale="difference",
                  test="bootstrap", level=level)


def _replicates(statistic: Statistic, n: int, *, n_boot: int, seed: int,
                level: float) -> tuple[float, np.ndarray | None]:
    """The statistic on the original seeds, and on `n_boot` resamples (None if n < 2).

    All resamples are one index matrix ``rng.integers(0, n, size=(n_boot, n))``: row j holds the
    seed positions of resample j, so a single call of `statistic` evaluates every replicate.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"the bootstrap needs at least one seed, got n = {n}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    estimate = float(_values(statistic, np.arange(n)[None, :])[0])
    if n < 2:  # one seed: every resample is that seed again, which says nothing about spread
        return estimate, None
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    return estimate, _values(statistic, idx)


def _values(statistic: Statistic, idx: np.ndarray) -> np.ndarray:
    """Call `statistic` and check that it returned one value per index row."""
    values = np.asarray(statistic(idx), dtype=float)
    if values.shape != (idx.shape[0],):
        raise ValueError(f"statistic(idx) with idx of shape {idx.shape} must return shape "
                         f"({idx.shape[0]},), got {values.shape}")
    return values


def _percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """The middle `level` share of the bootstrap replicates (numpy's default linear quantiles)."""
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- the comparisons


def paired(a: ArrayLike, b: ArrayLike, *, scale: str = "ratio", n_boot: int = N_BOOT,
           seed: int = SEED, level: float = LEVEL) -> Effect:
    """Compare two settings run on the same seeds: a[i] and b[i] come from seed i.

    Pairs where either value is NaN are dropped.

    scale="ratio" (values must be > 0): the effect is the geometric mean of a/b, that is
    ``exp(mean(log a - log b))``. Its interval is the bootstrap percentile interval over seeds
    (pairs resampled with replacement), and the test is the two-sided Wilcoxon signed-rank test
    on the log differences (scipy.stats.wilcoxon; exact where scipy computes it exactly; p = 1
    if every difference is zero).

    scale="difference": the effect is the mean of a - b, with the same bootstrap. The test is a
    sign-flip permutation test of the mean difference: if there is no effect, each difference is
    as likely to be positive as negative, so flipping signs gives the null distribution. Exact
    (all 2**n sign patterns) for n <= 16, otherwise 20 000 random flips.

    With fewer than 2 pairs the interval and p are nan and the effect is too close to call.
    """
    _check_scale(scale)
    x, y = _as_pairs(a, b, scale)
    d = np.log(x) - np.log(y) if scale == "ratio" else x - y
    n = d.size

    def mean_of_resample(idx: np.ndarray) -> np.ndarray:
        return d[idx].mean(axis=1)

    estimate, low, high = bootstrap(mean_of_resample, n, n_boot=n_boot, seed=seed, level=level)
    if scale == "ratio":
        estimate, low, high = math.exp(estimate), math.exp(low), math.exp(high)
        test = "Wilcoxon signed-rank"
        p = _wilcoxon_p(d) if n >= 2 else math.nan
    else:
        p, test = _sign_flip_p(d, seed) if n >= 2 else (math.nan, "sign-flip permutation")
    return Effect(estimate=estimate, low=low, high=high, n=n, p=p, scale=scale, test=test,
                  level=level)


def unpaired(a: ArrayLike, b: ArrayLike, *, scale: str = "ratio", n_boot: int = N_BOOT,
             seed: int = SEED, level: float = LEVEL) -> Effect:
    """Compare two independent samples (different seeds); NaN values are dropped.

    scale="ratio" (values > 0): the effect is the ratio of the geometric means,
    ``exp(mean(log a) - mean(log b))``; scale="difference": mean(a) - mean(b). The bootstrap
    resamples each sample on its own (with replacement). The test is a permutation test of the
    labels: if a and b do not differ, any split of the pooled values into groups of sizes n_a and
    n_b is as likely as the observed one. Exact when there are at most 20 000 such splits,
    otherwise 20 000 random permutations.

    The result's ``n`` is the number of seeds of a, ``n_b`` that of b. With fewer than 2 seeds in
    either sample the interval and p are nan.
    """
    _check_scale(scale)
    x = _as_sample(a, "a", scale)
    y = _as_sample(b, "b", scale)
    if scale == "ratio":
        x, y = np.log(x), np.log(y)
    n_a, n_b = x.size, y.size
    estimate = float(x.mean() - y.mean())
    low = high = p = math.nan
    test = "permutation"
    if min(n_a, n_b) >= 2:
        if n_boot < 1:
            raise ValueError(f"n_boot must be >= 1, got {n_boot}")
        if not 0.0 < level < 1.0:
            raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
        rng = np.random.default_rng(seed)
        idx_a = rng.integers(0, n_a, size=(n_boot, n_a))
        idx_b = rng.integers(0, n_b, size=(n_boot, n_b))
        replicates = x[idx_a].mean(axis=1) - y[idx_b].mean(axis=1)
        low, high = _percentile_interval(replicates, level)
        p, test = _label_permutation_p(x, y, seed)
    if scale == "ratio":
        estimate, low, high = math.exp(estimate), math.exp(low), math.exp(high)
    return Effect(estimate=estimate, low=low, high=high, n=n_a, p=p, scale=scale, test=test,
                  n_b=n_b, level=level)


# -------------------------------------------------------------------------------- the tests


def _wilcoxon_p(d: np.ndarray) -> float:
    """Two-sided Wilcoxon signed-rank p of the differences `d` (1 if all are zero)."""
    if np.all(d == 0):
        return 1.0
    from scipy import stats as scipy_stats  # here: scipy's import costs a second at start-up

    return float(scipy_stats.wilcoxon(d, alternative="two-sided").pvalue)


def _sign_flip_p(d: np.ndarray, seed: int) -> tuple[float, str]:
    """Two-sided sign-flip permutation p of mean(d), and the test's name.

    The p-value is the share of sign patterns whose |mean| is at least the observed |mean|
    (the observed pattern is one of them). Exact for n <= MAX_EXACT_FLIPS; otherwise N_PERM
    random patterns, with p = (count + 1) / (N_PERM + 1) so that it is never 0.
    """
    n = d.size
    observed = abs(d.mean())
    tol = _TOL * float(np.abs(d).mean())
    if n <= MAX_EXACT_FLIPS:
        bits = (np.arange(2**n)[:, None] >> np.arange(n)) & 1  # every pattern, (2**n, n)
        signs = 1.0 - 2.0 * bits
        means = np.abs(signs @ d) / n
        return float(np.mean(means >= observed - tol)), "sign-flip permutation"
    rng = np.random.default_rng([seed, 1])  # a stream apart from the bootstrap's
    signs = rng.choice(np.array([-1.0, 1.0]), size=(N_PERM, n))
    count = int(np.sum(np.abs(signs @ d) / n >= observed - tol))
    return (count + 1) / (N_PERM + 1), f"sign-flip permutation ({N_PERM} random flips)"


def _label_permutation_p(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[float, str]:
    """Two-sided permutation p of mean(x) - mean(y) over splits of the pooled values, and name."""
    n_a, n_b = x.size, y.size
    pooled = np.concatenate([x, y])
    pooled = pooled - pooled.mean()  # same differences, smaller rounding error
    total = pooled.sum()
    observed = abs(pooled[:n_a].mean() - pooled[n_a:].mean())
    tol = _TOL * float(np.abs(pooled).mean())

    def abs_diffs(group_a: np.ndarray) -> np.ndarray:
        """|mean(a) - mean(b)| for each row of positions that form group a."""
        sums = pooled[group_a].sum(axis=1)
        return np.abs(sums / n_a - (total - sums) / n_b)

    if math.comb(n_a + n_b, n_a) <= N_PERM:
        group_a = np.array(list(combinations(range(n_a + n_b), n_a)))
        return float(np.mean(abs_diffs(group_a) >= observed - tol)), "permutation"
    rng = np.random.default_rng([seed, 2])
    group_a = rng.random((N_PERM, n_a + n_b)).argsort(axis=1)[:, :n_a]
    count = int(np.sum(abs_diffs(group_a) >= observed - tol))
    return (count + 1) / (N_PERM + 1), f"permutation ({N_PERM} random)"


# ----------------------------------------------------------------------------- input checks


def _check_scale(scale: str) -> None:
    if scale not in _SCALES:
        raise ValueError(f"scale must be 'ratio' or 'difference', got {scale!r}")


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per seed), got shape "
                         f"{arr.shape}")
    return arr


def _check_values(arr: np.ndarray, name: str, scale: str) -> None:
    """Raise ValueError naming the first infinite value, or non-positive one for a ratio."""
    infinite = np.flatnonzero(np.isinf(arr))
    if infinite.size:
        i = int(infinite[0])
        raise ValueError(f"{name}[{i}] = {float(arr[i])!r} is not finite")
    if scale == "ratio":
        bad = np.flatnonzero(arr <= 0)  # NaN compares False, so it is not flagged here
        if bad.size:
            i = int(bad[0])
            raise ValueError(f"scale='ratio' needs values > 0, but {name}[{i}] = "
                             f"{float(arr[i])!r}; use scale='difference' for values that can "
                             f"be zero or negative")


def _as_pairs(a: ArrayLike, b: ArrayLike, scale: str) -> tuple[np.ndarray, np.ndarray]:
    """Paired inputs as float arrays, checked, with NaN pairs dropped."""
    x, y = _as_1d(a, "a"), _as_1d(b, "b")
    if x.size != y.size:
        raise ValueError(f"paired comparison needs one b per a: len(a) = {x.size} but "
                         f"len(b) = {y.size}")
    _check_values(x, "a", scale)
    _check_values(y, "b", scale)
    keep = ~(np.isnan(x) | np.isnan(y))
    if not keep.any():
        raise ValueError("no pair left: every pair has a NaN")
    return x[keep], y[keep]


def _as_sample(values: ArrayLike, name: str, scale: str) -> np.ndarray:
    """One independent sample as a float array, checked, with NaN dropped."""
    arr = _as_1d(values, name)
    _check_values(arr, name, scale)
    arr = arr[~np.isnan(arr)]
    if arr.size == 0:
        raise ValueError(f"{name} has no value (empty or all NaN)")
    return arr


# ------------------------------------------------------------------------------ a proportion


def proportion(k: int, n: int, level: float = LEVEL) -> tuple[float, float, float]:
    """k of n, with its Wilson score interval: (share, low, high), each in [0, 1]. The Wilson
    interval stays inside [0, 1] and keeps its level where k is 0 or n, unlike share ± 2 se.
    n = 0 gives (nan, nan, nan)."""
    if n <= 0:
        return math.nan, math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"k = {k} is not between 0 and n = {n}")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    share = k / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return share, max(0.0, centre - half), min(1.0, centre + half)
