"""Planning: the rooms maze, the flat / ladder / subgoal planners, the learned value, search scorers, the planning
evaluation, its recipe and report view."""

from .planners import FlatPlanner, LadderPlanner, SubgoalPlanner  # noqa: F401
from .value import PlanValue, ValueConfig  # noqa: F401
