"""The study harness: evaluating agents over many runs and reproducing the paper's experiment.

- :mod:`agents.study.evaluate`: one run (``run_episode``) and many (``evaluate``), re-exported as
  ``agents.run_episode`` and ``agents.evaluate``; :mod:`agents.study.quality`: the predictors'
  quality on the environment's workload (``spep quality``);
- :mod:`agents.study.plan`: what a study runs (tasks and their keys); :mod:`agents.study.store`: the
  run files; :mod:`agents.study.backends`: where runs execute (this process, local worker
  processes, Ray); :mod:`agents.study.reproduce`: ``spep reproduce``; :mod:`agents.study.regimes`:
  the regime map (``spep regimes``); :mod:`agents.study.calibrate`: the fit of the open fields to
  the paper's table (``spep calibrate``);
- :mod:`agents.study.stats`, :mod:`agents.study.tables`, :mod:`agents.study.paper`,
  :mod:`agents.study.figures` and :mod:`agents.study.report`: statistics, tables, the paper's
  numbers, figures and ``report.md``;
- :mod:`agents.study.cli`: the parsers of ``spep evaluate``, ``quality``, ``reproduce``, ``regimes``
  and ``calibrate``.
"""
