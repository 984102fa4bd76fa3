"""Find defective solar cells in EL images, and see where the model is weak."""

__version__ = "0.1.0"
