"""Billing sources: one module per provider behind one small interface (see base.py)."""
