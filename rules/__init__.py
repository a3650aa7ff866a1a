"""Marker so the rules data ships inside the wheel as gateway.rules_data (data only here)."""
