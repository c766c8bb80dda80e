"""The ``fota`` command line. Subcommand modules are imported only when used."""
