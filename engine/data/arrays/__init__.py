"""Array datasets (NPZ uploads, image ZIPs) and their preprocessing for CNN/RNN/autoencoders.

One module per concern:
- `dataset`: `ArrayData` (x shaped per kind, y as class indices or numbers), read from an NPZ
  upload and kept in one canonical NPZ form
- `preprocessor`: `ArrayPreprocessor`, fitted on the training rows only; its state is plain
  JSON saved as `preprocess.json`
- `instances`: predict instances sent as nested JSON lists, decoded to a batch

Image ZIPs and base64 images are read by `engine.data.images`, which builds on `dataset`;
`preprocessor` imports it only when an image model meets an image instance, so the imports
run one way and Pillow stays off the import path of other models.

This package defines nothing itself: import each name from the module that holds it.
"""
