"""Hydra launcher plugin: sweep jobs as Ray tasks (hydra-ray-launcher) on a Ray cluster."""
