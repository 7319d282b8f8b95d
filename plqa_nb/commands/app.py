"""``plqa app``: the tutorial and ICAO explorers as a page without code cells, served by Voilà.

A server, so safe by default: it listens on 127.0.0.1 unless ``--host`` says otherwise, the page's address
carries a random token, and only on 127.0.0.1 may ``--token ''`` drop it. Uploads are read in the page's
kernel, in memory (``plqa_nb.widgets.upload``); the page's notebook and its Voilà template (``plqa``: Voilà's
``lab`` without links to CDNs, so that the page asks nothing of other machines, and with the upload guard) live in a
temporary folder that is removed when the server stops.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from string import Template

from ..images import MAX_UPLOAD_BYTES
from . import VERBS

PAGE_CELL = "from plqa_nb.widgets.app import build_app\n\nbuild_app()"
# Voilà's websocket carries an upload up to the limit with room to spare; the page sends larger ones empty
WEBSOCKET_BYTES = 4 * MAX_UPLOAD_BYTES
TEMPLATE = "plqa"
# Voilà's lab template links Font Awesome's css from a CDN although Voilà's own bundle carries the icons: the two
# links are dropped, and so is the loader of mermaid (cdnjs; imported only for diagrams, which the page has none of).
# The guard: ipywidgets' FileUpload reads a whole file in the page and sends it over the websocket, whose limit
# would drop the connection without a word; a file above the upload limit is read as empty instead, so the kernel
# gets its declared size alone and refuses it with a message (plqa_nb.widgets.upload.read_upload).
PAGE_TEMPLATE = Template("""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}
{{ super() }}
<script>
(() => {
  const read = FileReader.prototype.readAsArrayBuffer;
  FileReader.prototype.readAsArrayBuffer = function (blob) {
    return read.call(this, blob instanceof File && blob.size > $max_bytes ? blob.slice(0, 0) : blob);
  };
})();
</script>
{%- endblock html_head_js -%}
{%- block notebook_css -%}
{%- set cdn = '<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@^5/css/' -%}
{{ super() | replace(cdn ~ 'all.min.css" type="text/css" />', '')
            | replace(cdn ~ 'v4-shims.min.css" type="text/css" />', '') }}
{%- endblock notebook_css -%}
{%- block html_head_js_mermaidjs -%}
{%- endblock html_head_js_mermaidjs -%}
""")


def is_loopback(host: str) -> bool:
    """True for this machine's own addresses (127.0.0.0/8, ::1, "localhost")."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LAB_ONLY_EXTENSIONS = ("jupyterlab-jupytext",)


def write_page(folder: Path) -> Path:
    """Write the page's one-cell notebook into ``folder``, its template (``voila/templates/plqa``, found through
    ``voila_env``) and Voilà's settings (``voila.json``, read from the folder it starts in: the template, a
    websocket that carries uploads up to ``WEBSOCKET_BYTES``); the notebook's path."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(PAGE_CELL)], metadata={
        "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}})
    path = folder / "plqa_app.ipynb"
    nbformat.write(nb, path)
    template = folder / "voila" / "templates" / TEMPLATE
    template.mkdir(parents=True)
    (template / "conf.json").write_text(json.dumps({"base_template": "lab"}))
    (template / "index.html.j2").write_text(PAGE_TEMPLATE.substitute(max_bytes=MAX_UPLOAD_BYTES))
    settings = {"Voila": {"tornado_settings": {"websocket_max_message_size": WEBSOCKET_BYTES}},
                # the page needs the widgets and plotly; JupyterLab-only front-end extensions in the environment
                # (jupytext's, which the documentation's mkdocs-jupyter brings) fail in Voilà's page
                "VoilaConfiguration": {"template": TEMPLATE, "extension_denylist": list(LAB_ONLY_EXTENSIONS)}}
    (folder / "voila.json").write_text(json.dumps(settings))
    return path


def voila_command(notebook: Path, host: str = "127.0.0.1", port: int = 8866, token: str = "") -> list[str]:
    """The Voilà command line serving ``notebook`` without its code on ``host``:``port``.

    Raises ValueError for a host other than this machine without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(f"serving on {host} makes the page reachable from other machines: give a --token")
    return [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--strip_sources=True",
            f"--Voila.ip={host}", f"--port={port}", f"--token={token}"]


def voila_env(folder: Path) -> dict[str, str]:
    """The environment of Voilà serving the page written into ``folder``: its template found there first, and
    without ``MPLBACKEND`` (the page's kernel draws inline, not with the file-only backend `plqa` chose)."""
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    env["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(folder), os.environ.get("JUPYTER_PATH")) if p)
    return env


def _exit(*_) -> None:
    raise SystemExit(0)


def run(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(16) if args.token is None else args.token
    signal.signal(signal.SIGTERM, _exit)  # a terminated `plqa app` unwinds: Voilà stopped, the folder removed
    with tempfile.TemporaryDirectory(prefix="plqa-app-") as folder:
        command = voila_command(write_page(Path(folder)), args.host, args.port, token)
        print(f"plqa app: http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
              + "  (ctrl-c stops it)", flush=True)
        server = subprocess.Popen(command, cwd=folder, env=voila_env(Path(folder)))
        try:
            return server.wait()
        except KeyboardInterrupt:
            return 0
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def register(sub) -> None:
    p = sub.add_parser("app", help=VERBS["app"],
                       description="Serve the tutorial explorer (the PLQ map of a sample or uploaded photo) and the "
                                   "ICAO explorer as one page without code cells. Listens on 127.0.0.1 unless "
                                   "--host says otherwise; the address it prints carries a random token (--token sets "
                                   f"it; only on this machine may it be empty). Uploads above "
                                   f"{MAX_UPLOAD_BYTES / 2**20:g} MB or that are "
                                   "not images are refused with a message; photos stay in memory.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8866, help="port (default 8866)")
    p.add_argument("--token", default=None,
                   help="token the page's address must carry (default: a random one)")
    p.set_defaults(func=run)
