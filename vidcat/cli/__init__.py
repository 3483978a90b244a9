"""``vidcat`` command line: a thin layer over the Python API, one module per command group.

Every option is generated from a dataclass field (``vidcat.cli.options``), so defaults and help
exist once. User errors print one ``vidcat: error: ...`` line and exit with status 2; no traceback.
"""
from __future__ import annotations

import errno
import logging
import os
import sys

from vidcat.cli import data, evaluate, info, serve, streams, train
from vidcat.cli.options import HelpFormatter, Parser
from vidcat.errors import VidcatError

COMMAND_GROUPS = (data, train, evaluate, serve, info, streams)
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT}


def build_parser() -> argparse.ArgumentParser:
    from vidcat.config import __version__

    parser = Parser(prog="vidcat", description="Video categorization toolkit.", formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"vidcat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for group in COMMAND_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error already printed as one line (2)
        return e.code if isinstance(e.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="vidcat: %(message)s")
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    try:
        return args.func(args)
    except VidcatError as e:
        print(f"vidcat: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as e:  # an output that cannot be written: full disk, read-only or forbidden folder
        if e.errno not in WRITE_ERRNOS:
            raise
        print(f"vidcat: error: cannot write {e.filename or 'an output file'}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vidcat: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
