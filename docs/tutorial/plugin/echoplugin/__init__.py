"""Chapter 7: a small twistd plugin, built step by step: the protocol, the service, the plugin."""
