"""The model-card examples: ``python model_cards/make_examples.py`` regenerates them; ``model_cards.make_examples``
imports from the repository root (the staleness tests)."""
