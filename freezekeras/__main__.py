"""``python -m freezekeras``: the same as the ``freezekeras`` command."""

from freezekeras.cli.commands import main

if __name__ == "__main__":
    main(prog_name="freezekeras")
