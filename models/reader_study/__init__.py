"""The paper's man-machine test: readers (e.g. junior, intermediate, senior surgeons) and the model
scored against one reference on the same images, with tests of difference.

study     reference, readers and model answers -> per-image IoU/Dice
stats     Friedman, pairwise Wilcoxon signed-rank with Holm correction, one-way ANOVA (scipy)
analysis  table, ranking and the conclusion text derived from the numbers
report    results.json, per_image.csv, box plots, report.html
simulate  simulated readers at three skill levels, for demonstration studies on synthetic data
run       reader_study(): the `endospine-model reader-study` command
"""
