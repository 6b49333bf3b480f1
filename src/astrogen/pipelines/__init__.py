"""Multi-step recipes composed from the library (they own no maths of their own)."""
