"""Training: BlobNet, ONNX export, publishing model versions, the training loop."""
