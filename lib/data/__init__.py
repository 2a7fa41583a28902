"""Data: skeleton, cameras, keypoint formats, the H36M reader, clip stores, codec, synthetic data."""
