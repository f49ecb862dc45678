"""The foundation every layer may import: errors, units, plug-in registries, version and
data locations. Imports nothing else of greensim."""
