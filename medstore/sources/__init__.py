"""Readers for the inputs recipes turn into tasks (scenarios, MEDEC, consultations, MIMIC)."""
