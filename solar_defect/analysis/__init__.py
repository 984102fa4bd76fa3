"""Sensitivity analysis: image features, quantile binning, tables and figures."""
