"""Pure reconciliation: from an InferenceDeployment spec and observations to desired objects and status.

Nothing in this package does I/O.
"""
