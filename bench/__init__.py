"""The benchmark suite: ``python -m bench`` (see ``bench/__main__.py`` and README "Benchmarks").

Not part of the test run. Each part measures one target of the project against the bare
libraries or the hardware and writes ``bench/results/latest.json`` and ``latest.md``.
"""
