"""Local fakes of cloud billing APIs, spoken to by the real SDKs (127.0.0.1 only)."""
