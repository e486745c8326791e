"""Offline evaluations: labelled synthetic data and the anomaly detection benchmark."""
