"""The ``freezekeras`` command line: Click commands over the API (:mod:`freezekeras.cli.commands`)."""
