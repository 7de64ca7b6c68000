"""Alibaba DashScope (channel types 17 and 49): `adapter.py` holds the adapters; each DashScope API is spoken
in a module of its own (chat.py, wanx.py, speech.py, asr.py), and envelope.py reads the error and usage they
all answer with.
"""
