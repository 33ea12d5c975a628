"""Training: German credit data -> scikit-learn pipeline -> the ONNX artifacts in onnx_models/."""
