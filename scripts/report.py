"""`python scripts/report.py DIR [--out OUT]`: the same as the `handgestures-report` command."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # works without `pip install -e .` too

from handgestures.analysis.report import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
