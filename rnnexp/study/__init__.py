"""The fastest-convergence study: search, validation on fresh seeds, and a sampler comparison.

Q2(ii) of the report asks for the fastest convergence of a 5-unit nn.RNN on "edgement" within
100 epochs; the report answered by hand (RMSprop lr 0.4, alpha 0.5, eps 1e-18). Here:

    spec.py        what the study file (configs/sweeps/fastest_convergence.yaml) says; Budget
    search.py      1. an Optuna study over every optimizer and its own arguments, through
                      `rnnexp-train -m`; resumable
    validation.py  2. the best setting and the report's, each on seeds the search never saw
    samplers.py    3. TPE against random search: best-so-far objective against trial count
    plots.py       the figures of all three
    section.py     the Markdown section for REPORT.md
    run.py         all three in order (rnnexp-study), and as a step of rnnexp-reproduce
    cells.py       the same question for nn.RNN, nn.GRU and nn.LSTM, one study per cell, and its
                   REPORT.md section (rnnexp-study --only cells; a step of rnnexp-reproduce)

Every step runs rnnexp-train in a subprocess (rnnexp.runner), so the runs are ordinary run dirs.
Layout under the results dir (rnnexp.results.Results):

    studies/<name>.log          Optuna journal storage (same name + storage = resume)
    study/                      small outputs, committed: YAML, CSV, Markdown, PNG
    study_runs/                 run dirs (search, validation, comparison) and logs/, not committed
"""
from rnnexp.study.run import StudyStep, run_all
from rnnexp.study.section import render_section, report_section
from rnnexp.study.spec import FULL, QUICK, Budget, StudyError, study_cfg, study_file

__all__ = ["FULL", "QUICK", "Budget", "StudyError", "StudyStep", "render_section",
           "report_section", "run_all", "study_cfg", "study_file"]
