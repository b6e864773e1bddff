"""``groundlight eval``: score prediction files in official formats with the project's metrics.

Each benchmark is a module here exporting ``NAME``, ``HELP``, ``add_arguments(parser)``,
``evaluate(args) -> dict`` (JSON with the official keys) and ``table(result) -> str``.
The scoring itself lives in ``groundlight.metrics``; these modules only read and format.
"""
