"""The Python API that notebooks and the command line share.

:func:`greensim.api.run.run` (one experiment), :func:`greensim.api.sweep.sweep` (a grid
of runs on local processes or a Dask cluster, with a run cache), :mod:`.check`
(regression check against recorded values), :mod:`.validate` (check an experiment
without running it) and :func:`greensim.api.aging.age_sweep`. The most used names are
re-exported lazily by the top-level package: ``greensim.run``, ``greensim.sweep``,
``greensim.plan``.
"""
