"""Simulation core: event loop, requests, instances, batching and KV memory.

Knows nothing of any particular policy, performance model, carbon source, trace
format or output writer; those reach it through the interfaces in
:mod:`greensim.core.interfaces`.
"""
