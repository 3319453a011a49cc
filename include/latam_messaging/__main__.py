"""``python -m latam_messaging <command>``: operator commands.

* ``doctor`` – connections, pools, warehouse migrations and receiver: is this Airflow ready? (exit 1 if not)
* ``migrate`` – bring the warehouse schema to head.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"doctor", "migrate"}
    if not argv or argv[0] not in commands:
        print(__doc__.strip())
        return 2
    from latam_messaging import doctor

    command, rest = argv[0], argv[1:]
    return doctor.run(rest) if command == "doctor" else doctor.migrate(rest)


if __name__ == "__main__":
    sys.exit(main())
