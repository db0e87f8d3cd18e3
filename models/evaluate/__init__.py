"""Evaluation of a segmentation model on a dataset split, after the paper's measures.

accumulate  per-image confusion, score histograms, rows, gallery (bounded memory)
roc         ROC/AUC from score histograms
labels      checked reading of reference, prediction and reader label maps
summary     metrics.json and the per-image / per-clip tables
plots, html, gallery, report   the pictures and the self-contained report.html
run         evaluate(): the `endospine-model evaluate` command
"""
