"""``decalite-view DIR``: browse the reconstructions under DIR in a local web page (offline; see
:mod:`decalite.view`). Each ``*.glb`` (``decalite-reconstruct save.gltf=true``, decalite-animate's and
decalite-transfer's) is listed beside its photo; sliders drive its expression components, jaw and head pose.

    decalite-view outputs/reconstruct                 # serves http://127.0.0.1:8765/ and opens a browser
    decalite-view outputs/demo --port 9000 --no-browser
"""

from __future__ import annotations

import argparse
import logging
import sys
import webbrowser
from pathlib import Path

log = logging.getLogger("decalite.view")


def main(argv: list[str] | None = None) -> None:
    from decalite.view.server import list_reconstructions, make_server

    parser = argparse.ArgumentParser(prog="decalite-view", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a folder of reconstructions (searched recursively for .glb)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.folder.is_dir():
        log.error("%s is not a folder: pass the output folder of decalite-reconstruct (save.gltf=true)", args.folder)
        sys.exit(2)
    found = list_reconstructions(args.folder)
    if not found:
        log.warning("no .glb under %s yet: decalite-reconstruct input=... output=%s save.gltf=true writes them",
                    args.folder, args.folder)
    try:
        server = make_server(args.folder, args.host, args.port)
    except OSError as err:
        log.error("cannot listen on %s:%d (%s): pass another --port", args.host, args.port, err)
        sys.exit(2)
    url = f"http://{args.host}:{server.server_address[1]}/"
    log.info("decalite-view: %d reconstruction(s) under %s at %s (Ctrl-C stops)", len(found), args.folder, url)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
