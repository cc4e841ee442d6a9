"""``python -m outrider_cli``: the same as the ``outrider`` command."""

from outrider_cli import main

raise SystemExit(main())
