"""Names of the relay's request modes that several layers must agree on.

A leaf module (it imports nothing), so pricing, the adapters and the relay can all name the same tuple without
any of them importing another for it.
"""

# The audio uploads (multipart forms): streamed to the vendor, never replayed on another channel, priced by
# the length of the transcript, answered in the format the client asked for.
TRANSCRIPT_MODES = ("transcriptions", "translations")
