"""Tools to run secure-fota for real outside the product: ``fota demo`` (:mod:`.demo`) and
the harness the demo, the benchmarks and the tests share (:mod:`.harness`: the ``fota``
command line in a child process, an update server on a free loopback port).

Nothing in the product imports this package.
"""
