"""Google Gemini (channel types 24 and 51): `adapter.py` holds the adapters; `convert.py` makes Gemini's
requests, `answers.py` reads its answers, streams and errors, `media.py` speaks its image and speech models,
and `imagen.py` Imagen, which Vertex AI (providers/adapters/vertex.py) shares with the Gemini API.
"""
