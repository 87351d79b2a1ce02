"""The SimPy engine: buffers, machines, stores and the run that ties them together."""

from twin.engine.core import Engine, Observer

__all__ = ["Engine", "Observer"]
