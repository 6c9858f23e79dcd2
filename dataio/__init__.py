"""Data in and out: importers for the preference-data formats teams use, and exporters for TRL."""
