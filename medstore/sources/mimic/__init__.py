"""MIMIC-IV and MIMIC-IV-Note (credentialed): DuckDB views over the official files, admission
packets, the synthetic demo extract and per-patient artifacts."""

MIMIC_DIR_ENV = "MEDSTORE_MIMIC_DIR"
