"""The core: requests checked and fanned out to workers (protocol, service, dispatcher, task table), the translation cache, language detection and stats."""
