"""Xunfei (iFlytek) Spark, over its two APIs: `spark_ws.py` the WebSocket API (channel type 18, one-api's
`APPID|APISecret|APIKey` key and signed socket URL), `spark_http.py` the OpenAI-shaped HTTP API (type 48,
the console's APIPassword). Their error codes are documented apart, and differ.
"""
