"""Visualisation: attention heatmaps of a trained model."""
