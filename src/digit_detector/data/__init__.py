"""Training data: stroke recordings -> augmented, composed canvases with exact boxes."""
