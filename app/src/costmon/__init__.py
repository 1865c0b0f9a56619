"""costmon: what the company spends on AI, per cloud, customer and model."""

__version__ = "0.1.0"
