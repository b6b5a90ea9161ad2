"""The engine step loop: schedule → execute → update."""

from plinth.engine.engine import Engine
from plinth.engine.executor import Executor
from plinth.engine.outputs import EngineOutput

__all__ = ["Engine", "EngineOutput", "Executor"]
