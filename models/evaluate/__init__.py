"""Evaluation of a segmentation model on a dataset split, after the paper's measures.

accumulate  per-image confusion, score histograms, rows, gallery (bounded memory)
roc         ROC/AUC from score histograms; exact rank AUC and ROC of frame scores
calibration expected calibration error (ECE) and reliability bins, before/after temperature scaling
labels      checked reading of reference, prediction and reader label maps
summary     metrics.json and the per-image / per-clip tables
plots, html, gallery, report   the pictures and the self-contained report.html
run         evaluate(): the `endospine-model evaluate` command

gatecheck   gate_check(): the `endospine-model gate-check` command (the trust gate on in- and
            out-of-distribution images and on corrupted frames)
corruptions blur, smoke, blood, over- and under-exposure of a frame (pure, seeded)
gatesummary, gatereport   its summary.json, console lines and report folder
"""
