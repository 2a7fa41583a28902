"""Inference: ONNX export with parity check, lifting a video's keypoints, rendering."""
