"""The `deltaboard` command: `train` (local, no server), `up`, `serve` and `worker` (contract §6).

Each subcommand's implementation is imported only when used, so `deltaboard train` needs no web stack.
"""

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deltaboard", description="Train networks and watch backprop, live.")
    sub = p.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a spec locally with a progress bar, no server")
    train.add_argument("spec", help="path to a spec JSON file (contract §3)")
    train.add_argument("--events", metavar="OUT.jsonl", help="write every event as a JSON line")
    train.add_argument("--quiet", action="store_true", help="no progress bar")

    redis_help = "Redis URL (default: $DELTABOARD_REDIS_URL)"
    up = sub.add_parser("up", help="API + dashboard + N workers; starts its own Redis without --redis-url")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--workers", type=int, default=1)
    up.add_argument("--redis-url", help="use this Redis instead of starting one")
    up.add_argument("--data-dir", default=None, help="where the embedded Redis keeps its data (.deltaboard)")

    serve = sub.add_parser("serve", help="API and dashboard only")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--redis-url", help=redis_help)

    worker = sub.add_parser("worker", help="one RQ worker")
    worker.add_argument("--redis-url", help=redis_help)
    worker.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        from .train_command import train_command

        return train_command(args.spec, events_path=args.events, quiet=args.quiet)
    from . import launcher

    return getattr(launcher, f"{args.command}_command")(args)


if __name__ == "__main__":
    sys.exit(main())
