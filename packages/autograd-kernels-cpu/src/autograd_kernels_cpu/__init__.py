"""Fused, multithreaded Numba kernels for the NumPy backend (placeholder while the kernels land)."""
