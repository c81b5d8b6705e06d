"""lmrl's evaluation harness: tasks, agents, judges, the concurrent runner and the run directory.

Importing it changes nothing in the caller's environment; the ``lmrl`` command sets its offline
switches in its own process (``harness.cli``).
"""

__version__ = "0.1.0"
