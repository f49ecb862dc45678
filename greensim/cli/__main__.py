"""``python -m greensim.cli``: the ``greensim`` command without the console script."""

from greensim.cli.main import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="greensim")
