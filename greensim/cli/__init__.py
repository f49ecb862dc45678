"""Command line: thin wrappers over :mod:`greensim.api` and :mod:`greensim.results`.

One module per command group (:mod:`~greensim.cli.run`, :mod:`~greensim.cli.plan`,
:mod:`~greensim.cli.sweep`, :mod:`~greensim.cli.trace`, :mod:`~greensim.cli.forecast`,
:mod:`~greensim.cli.aging`, :mod:`~greensim.cli.theory`, :mod:`~greensim.cli.profile`);
:mod:`greensim.cli.main` holds the ``greensim`` group and registers them. The console script
is ``greensim = "greensim.cli:main"``.
"""

from greensim.cli.main import main

__all__ = ["main"]
