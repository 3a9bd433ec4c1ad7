"""``python -m vlmcompress.cli`` (what ``accelerate launch -m vlmcompress.cli`` runs)."""

import sys

from .app import main

sys.exit(main())
