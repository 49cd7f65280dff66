"""nginx (Debian's) in front of ChatWait instances, configured with a block as the docs give it:
its `upstream` servers replaced by the instances, its `listen` by a free loopback port, wrapped
in a configuration of its own (logs, pid and temporary files in a folder of its own). Stops with
the test, or with this process."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .processes import ends_with_parent, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
START_SECONDS = 20.0
_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


class Nginx:
    """nginx serving `block` (an http-level configuration: `map`, `upstream`, `server`), its
    upstream servers replaced by `targets` (`host:port`)."""

    def __init__(self, block: str, targets: list[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="chatwait-nginx-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        servers = "".join(f"    server {target} max_fails=0;\n" for target in targets)
        block = re.sub(r"(?m)^    server \S+:\d+[^\n]*\n", "", block)
        block = re.sub(r"(upstream \w+ \{\n)", lambda found: found.group(1) + servers, block, count=1)
        block = re.sub(r"listen \d+;", f"listen 127.0.0.1:{self.port};", block)
        temps = "".join(f"    {name}_temp_path {self.folder / name};\n" for name in _TEMPS)
        config = self.folder / "nginx.conf"
        config.write_text(
            f"daemon off;\nworker_processes 1;\npid {self.folder / 'nginx.pid'};\n"
            f"error_log {self.folder / 'error.log'} warn;\nevents {{ worker_connections 256; }}\n"
            f"http {{\n    access_log off;\n{temps}{block}\n}}\n"
        )
        self.process = subprocess.Popen(
            [NGINX, "-p", str(self.folder), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=ends_with_parent,
        )
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nginx ended at start: {self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not listen within {START_SECONDS:g} s: {self.log()}")

    def log(self) -> str:
        found = self.folder / "error.log"
        return found.read_text()[-2000:] if found.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        shutil.rmtree(self.folder, ignore_errors=True)
