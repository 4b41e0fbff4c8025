"""Self-supervised masked-depth fine-tuning (``lingbot-depth train``; docs/training.md)."""
