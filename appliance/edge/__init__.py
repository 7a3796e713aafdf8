"""The edge: every door a client talks to (ZeroMQ 5555/5556, HTTP and LibreTranslate, the gateway's compat ports) and CurveZMQ."""
