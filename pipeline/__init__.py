"""The training pipeline: sources → training → FAISS index → evaluation → publish."""
