"""Models assembled from the engines: real pretrained weights run through the project's own kernels."""
