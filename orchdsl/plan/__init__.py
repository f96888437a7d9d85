"""Plans: what the planner decided (model), and how it is shown (renderers)."""

from .model import (UNKNOWN, Action, OutputChange, Plan, ResourceChange, is_unknown)

__all__ = ["UNKNOWN", "Action", "OutputChange", "Plan", "ResourceChange", "is_unknown"]
