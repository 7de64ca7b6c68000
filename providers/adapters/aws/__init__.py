"""What AWS services share on the wire, for the vendors AWS hosts (Bedrock): Signature Version 4
(`sigv4.py`) and the binary event stream their streamed answers come in (`eventstream.py`).

No AWS SDK: the house style keeps vendor SDKs out of the runtime, and both are small, documented formats.
"""
