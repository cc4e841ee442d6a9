"""Outrider scheduler service: the scheduler extender, the load forecaster and the scale-up planner."""
