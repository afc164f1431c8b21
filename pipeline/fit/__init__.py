"""Figures against evaluators, over every imported calibration session (`callreview calibrate
fit`; docs/METRICS.md, "Figures against evaluators"). Suggestions only: nothing is applied.

ranks.py       per rubric item and figure: Spearman's rho with a bootstrap interval over pairs
thresholds.py  per rule flag: the threshold that best separates drifted current calls from the
               rest, with cross-validated agreement, beside the threshold in force
"""
