"""Outrider operator: the InferenceDeployment API, its reconciliation and the kopf handlers."""
