"""Kubernetes I/O for the operator: the only modules that talk to the apiserver."""
