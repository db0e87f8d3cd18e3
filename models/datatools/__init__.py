"""Dataset tools behind `endospine-model extract | import | validate | split | frame-stats`.

extract.py    video clips -> an unlabeled frame set (images/ + frames.yaml) to hand to labelers
quality.py    the frame measures extract uses: field of view, sharpness, exposure, dHash
importers.py  labeled sets -> a dataset: the shared part, PaddleSeg lists and mask folders
labelme.py    Labelme JSON shapes (polygons, rectangles, circles, masks) -> label maps
cvat.py       CVAT 'Segmentation mask 1.1' exports -> label maps
pairs.py      what the readers hand to the importer (Pair, ImportOptions) and their file helpers
masks.py      decoding annotation masks into class ids, and the --map file
validate.py   checking a dataset on disk and reporting every problem by file
splitting.py  re-splitting a dataset by clip
framestats.py appearance statistics inside the field of view vs. real reference ranges (frame-stats)
common.py     what these share: reading dataset.yaml leniently, clip ids, parallel map
commands.py   the command handlers (argparse namespace in, printed summary out)
"""
