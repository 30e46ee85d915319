"""Verdicts derived from the accepted samples as a whole: near-duplicate clusters (MinHash-LSH,
optionally semantic with the embedded sentence model) and contamination by held-out evaluation
data (13-gram overlap and near-duplicate match). See ``scan.py``."""
