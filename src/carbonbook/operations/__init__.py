"""The operations layer: what operators and users run around the engine and the venue.

- :mod:`~carbonbook.operations.cli`: the ``carbonbook`` command line;
- :mod:`~carbonbook.operations.replay`, :mod:`~carbonbook.operations.journal`: replay of order
  logs, the journal and recovery;
- :mod:`~carbonbook.operations.report`, :mod:`~carbonbook.operations.progress`: session
  reports, plots and progress lines;
- :mod:`~carbonbook.operations.benchmark`, :mod:`~carbonbook.operations.workload`: ``carbonbook
  bench`` and the generated workloads it measures;
- :mod:`~carbonbook.operations.lobster`: LOBSTER message files to order logs.
"""
