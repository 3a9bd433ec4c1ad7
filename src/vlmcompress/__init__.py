"""vlmcompress: make CLIP, SigLIP and BLIP small and fast with the Hugging Face tools you already use."""

__version__ = "0.1.0"
