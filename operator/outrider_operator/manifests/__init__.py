"""Generators for the CRD, the chart's generated files and the rendered install manifests."""
