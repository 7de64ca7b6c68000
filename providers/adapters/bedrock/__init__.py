"""AWS Bedrock (channel type 33): `adapter.py` holds the adapter, its InvokeModel requests for Claude and
its stream decoders; `converse.py` the Converse API every other model speaks. Signing and the binary event
stream are AWS's, shared in providers/adapters/aws/.
"""
