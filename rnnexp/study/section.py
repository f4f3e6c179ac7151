"""The study's section of REPORT.md, from the files the study wrote into results/study/ (so
rnnexp-report can rebuild it without running anything)."""
from __future__ import annotations

import pandas as pd
from omegaconf import OmegaConf

from rnnexp.results import Results
from rnnexp.study.validation import epochs_text, param_overrides

SUMMARY = "study.yaml"  # written last by run_all: the study has run once it exists
SECTION = "SECTION.md"


def render_section(ctx) -> str:
    """REPORT.md's section (registered in rnnexp.reproduce); empty until the study has run."""
    results = Results(ctx.results)
    return report_section(results) if (results.study / SUMMARY).exists() else ""


def report_section(results: Results) -> str:
    """The Markdown section of REPORT.md (which lives in the results dir) for the study."""
    out = results.study
    summary = OmegaConf.to_container(OmegaConf.load(out / SUMMARY))
    numbers = pd.read_csv(out / "validation.csv").set_index("setting")
    table = (out / "validation.md").read_text(encoding="utf-8").strip()
    best, report = numbers.loc["best"], numbers.loc["report"]
    n = int(best.seeds)
    figures = out.relative_to(results.root).as_posix()  # image links relative to REPORT.md
    lines = [
        "## Q2(ii) by search: the fastest robust convergence with hidden size 5",
        "",
        f"An Optuna study ({summary['search']['trials'].get('complete', 0)} trials, TPE, "
        f"{len(summary['budget']['trial_seeds'])} seeds per trial) searched SGD, Adam, Adagrad "
        "and RMSprop with each one's own arguments for the fastest convergence of nn.RNN "
        f'hidden 5 on "edgement" within {int(best.budget)} epochs. A trial scores as its slowest '
        "seed, a seed that does not converge scoring worse than any that does (docs/study.md). Both settings "
        f"were then trained on {n} seeds the search never used "
        f"({summary['budget']['validation_seeds'][0]}–{summary['budget']['validation_seeds'][-1]}).",
        "",
        "Epochs to converge (loss below 5e-5 and the word spelled, through the last epoch):",
        "",
        table,
        "",
        f"Best setting (trial {summary['search']['best_trial']}): `"
        + " ".join(param_overrides(summary["search"]["best_params"])) + "`",
        "",
        f"The best setting converges in a median {epochs_text(best['median'], int(best.budget))} "
        f"epochs with {int(best.converged)} of {n} seeds converged; the report's RMSprop takes a "
        f"median {epochs_text(report['median'], int(report.budget))} with "
        f"{int(report.converged)} of {n}." + paired_sentence(out / "validation_runs.csv",
                                                           int(best.budget)),
        "",
        f"![loss curves]({figures}/loss_curves.png)",
        "",
    ]
    if (out / "sampler_summary.csv").exists():
        lines += sampler_lines(pd.read_csv(out / "sampler_summary.csv"), figures)
    return "\n".join(lines) + "\n"


def paired_sentence(runs_csv, budget: int) -> str:
    """The best setting against the report's on the same fresh seeds, paired by seed: the
    difference in epochs to converge (a seed that does not converge counts as budget + 1)."""
    from rnnexp.stats import paired

    if not runs_csv.exists():
        return ""
    runs = pd.read_csv(runs_csv)
    wide = runs.pivot_table(index="seed", columns="setting", values="epochs_to_converge",
                            aggfunc="first", dropna=False)
    if not {"best", "report"} <= set(wide.columns):
        return ""
    wide = wide[["best", "report"]].fillna(budget + 1)
    e = paired(wide.best.to_numpy(float), wide.report.to_numpy(float), scale="difference")
    return (" Paired by seed, " + e.describe("the best setting needs", "the report's", "epochs")
            + f"; a seed that does not converge counts as {budget + 1}.")


def sampler_lines(s: pd.DataFrame, figures: str = "study") -> list[str]:
    """The sampler comparison's subsection, from sampler_summary.csv (one row per space and
    sampler)."""
    first = s.iloc[0]
    lines = [
        "### Sampler comparison",
        "",
        f"Each sampler ran {int(first.trials)} trials of the same objective, once for each of "
        f"{int(first.study_seeds)} study seeds (the sampler's seed), in batches of "
        f"{int(first.n_jobs)} trials. TPE is the study's (multivariate, grouped); its first "
        f"{int(first.startup_trials)} trials are random, the very trials random search draws "
        "with the same seed, so their curves part only after them. On the whole space (every "
        "optimizer with its own arguments) TPE is set against random search; on the RMSprop branch "
        "alone (lr, alpha, eps, momentum: a continuous space, centered off) GP and CMA-ES join. "
        "Best objective after the last trial, mean over study seeds (range), and the share of "
        f"trials after trial {int(first.startup_trials)} that converged on every seed:",
        "",
        "| space | sampler | best after the last trial | range | trials converged on every seed |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r.space} | {r.sampler} | {r.final_mean:.1f} | {r.final_min:g}–{r.final_max:g} "
              f"| {r.converged_after_startup_pct:g} % |" for r in s.itertuples()]
    return lines + ["", f"![sampler comparison]({figures}/sampler_comparison.png)", ""]
