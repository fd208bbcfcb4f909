"""``python -m redcaps.sandbox serve --state-dir DIR``: run the sandbox for the demo or by hand."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import threading
from pathlib import Path

from redcaps.atomic import write_text
from redcaps.sandbox import Sandbox
from redcaps.sandbox.world import World


def serve(state_dir: Path, port: int, world: World) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with Sandbox(world, state_dir=state_dir, port=port) as sandbox:
        write_text(
            state_dir / "env.sh", "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sandbox.env().items())
        )
        print(f"sandbox proxy on {sandbox.proxy_url}; in another shell, export these (or source", flush=True)
        print(f"{state_dir / 'env.sh'}); Ctrl-C stops the sandbox:", flush=True)
        for key, value in sandbox.env().items():
            print(f"export {key}={shlex.quote(value)}", flush=True)
        stop.wait()


def write_official(dest: Path, seed: int) -> None:
    for stem, content in World(seed).official_files().items():
        path = dest / "annotations" / f"{stem}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(content))
        print(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="redcaps-sandbox", description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="start the proxy and write DIR/env.sh and DIR/ca.pem")
    run.add_argument("--state-dir", type=Path, required=True)
    run.add_argument("--port", type=int, default=0)
    rot = run.add_argument_group("the decayed web (all off by default)")
    rot.add_argument("--decay", type=float, default=0.0, help="share of original images that are gone")
    rot.add_argument(
        "--preview-loss", type=float, default=0.1, help="share of those whose preview is gone too"
    )
    rot.add_argument("--opt-outs", type=float, default=0.0, help="share of images sent with an X-Robots-Tag")
    rot.add_argument(
        "--deletions", type=float, default=0.0, help="share of image posts deleted after archiving"
    )
    rot.add_argument("--flickr-farms-gone", action="store_true", help="farm hosts answer 410; live. serves")
    official = commands.add_parser(
        "write-official", help="write the official-format files into DIR/annotations"
    )
    official.add_argument("dest", type=Path)
    args = parser.parse_args(argv)
    if args.command == "serve":
        world = World(
            args.seed,
            decay=args.decay,
            preview_loss=args.preview_loss,
            opt_outs=args.opt_outs,
            deletions=args.deletions,
            flickr_farms_gone=args.flickr_farms_gone,
        )
        serve(args.state_dir, args.port, world)
    else:
        write_official(args.dest, args.seed)


if __name__ == "__main__":
    main()
