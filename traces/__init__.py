"""Fitted trace models shipped with greensim (installed as ``greensim._traces``)."""
