"""Where things are: the repository, the vendors' documented examples."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: byte-identical copies of the vendors' documented examples
VENDOR_DOCS = ROOT / "tests" / "fixtures" / "vendor_docs"
#: the ground truth beside the repository, when it is there
SHARED_EXAMPLES = ROOT.parent / "shared" / "vendor-examples"
