"""Exact unit conversion constants. Internal units are SI: s, J, W, gCO2e, bytes."""

J_PER_KWH = 3.6e6
S_PER_HOUR = 3600.0
S_PER_YEAR = 365.0 * 24.0 * 3600.0
G_PER_KG = 1000.0
BYTES_PER_GB = 1e9
BYTES_PER_GIB = 1024.0**3
FLOPS_PER_TFLOPS = 1e12
