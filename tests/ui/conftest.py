"""Fixtures for the browser tests: a headless JupyterLab server, a marimo app, Chromium, a kernel client.

`marimo_url` serves notebooks/marimo_demo.py with `marimo run` the same way.
The server listens on 127.0.0.1 with no token, on a free port, with its own config,
runtime and settings folders, and serves a copy of the notebooks in this folder.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
BUNDLE = REPO / "headpursuit_widget" / "static" / "widget.js"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("HEADPURSUIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_bundle() -> None:
    if BUNDLE.is_file():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"{BUNDLE} is missing and npm is not installed: run `npm ci && npm run build` first")
    if not (REPO / "node_modules").is_dir():
        subprocess.run([npm, "ci"], cwd=REPO, check=True)
    subprocess.run([npm, "run", "build"], cwd=REPO, check=True)


class Lab:
    """A running Jupyter server: its URL, folders, and helpers to reach its kernels."""

    def __init__(self, url: str, root: Path, runtime: Path, log_path: Path):
        self.url, self.root, self.runtime, self.log_path = url, root, runtime, log_path

    def sessions(self) -> list[dict]:
        return requests.get(f"{self.url}/api/sessions", timeout=10).json()

    def start_kernel(self, path: str, timeout: float = 120) -> str:
        """Start (or find) the session of the notebook at `path` (relative to the server's root) and wait
        for its kernel's own ready signal (its reply to kernel_info); -> the kernel id. A page opened on
        `path` then joins this kernel instead of starting its own: opening a notebook with no session
        can start two kernels and shut the first seconds later, taking the first cells' run with it."""
        from jupyter_client import BlockingKernelClient

        body = {"path": path, "type": "notebook", "name": Path(path).name, "kernel": {"name": "python3"}}
        kernel_id = requests.post(f"{self.url}/api/sessions", json=body, timeout=60).json()["kernel"]["id"]
        client = BlockingKernelClient(connection_file=str(self.runtime / f"kernel-{kernel_id}.json"))
        client.load_connection_file()
        client.start_channels(hb=False)  # a busy machine can miss heartbeats: the reply is the signal
        try:
            client.kernel_info(reply=True, timeout=timeout)  # queued until the kernel listens
        finally:
            client.stop_channels()
        return kernel_id

    def kernel_ids(self, path: str) -> list[str]:
        """The ids of the kernels the server's sessions hold for the notebook at `path`."""
        return [s["kernel"]["id"] for s in self.sessions() if s["path"] == path]

    def kernel(self, notebook: str, timeout: float = 120) -> Kernel:
        """A client for the kernel of `notebook`, once the server has started one."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for s in self.sessions():
                if s["path"].endswith(notebook):
                    conn = self.runtime / f"kernel-{s['kernel']['id']}.json"
                    if conn.is_file():
                        return Kernel(conn, s["id"], self)
            time.sleep(0.5)
        raise TimeoutError(f"no kernel started for {notebook} within {timeout} s")

    def shutdown_all(self) -> None:
        for s in self.sessions():
            requests.delete(f"{self.url}/api/sessions/{s['id']}", timeout=30)


class Kernel:
    """Evaluates Python expressions in a notebook's kernel (as a second client, like a console)."""

    def __init__(self, connection_file: Path, session_id: str, lab: Lab):
        from jupyter_client import BlockingKernelClient

        self.client = BlockingKernelClient(connection_file=str(connection_file))
        self.client.load_connection_file()
        self.client.start_channels()
        self.session_id, self.lab = session_id, lab

    def eval(self, expr: str, timeout: float = 120):
        """JSON value of `expr` evaluated in the kernel."""
        out: list[str] = []

        def hook(msg):
            if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
                out.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                out.append("\n".join(msg["content"]["traceback"]))

        code = f"import json as _json\nprint(_json.dumps({expr}))"
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=hook, store_history=False)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"kernel failed on {expr!r}: {''.join(out)}")
        return json.loads("".join(out))

    def close(self) -> None:
        """Disconnect; the kernel keeps running (a later page on the same notebook reuses it)."""
        self.client.stop_channels()


def _stop(proc: subprocess.Popen, log) -> None:
    """Terminate a server process (kill it after 15 s) and close its log file."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="session")
def bundle() -> Path:
    """The built front end (built with npm when missing)."""
    _ensure_bundle()
    return BUNDLE


@pytest.fixture(scope="session")
def lab(tmp_path_factory, bundle):
    base = tmp_path_factory.mktemp("jupyter")
    root, runtime = base / "root", base / "runtime"
    root.mkdir()
    for nb in HERE.glob("*.ipynb"):
        shutil.copy(nb, root / nb.name)
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_SETTINGS_DIR=str(base / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        IPYTHONDIR=str(base / "ipython"),
    )
    env.pop("ANYWIDGET_HMR", None)
    news = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    log = open(base / "server.log", "w")  # noqa: SIM115 - stays open for the server's lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            "--ServerApp.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={root}",
            "--LabApp.news_url=None",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
            "--LabApp.extension_manager=readonly",
            "--LabApp.expose_app_in_browser=True",  # window.jupyterapp: the pages' own ready signals
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--allow-root",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}: {(base / 'server.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/api/status", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > end:
                pytest.fail(f"jupyter lab did not answer on {url} within 90 s")
            time.sleep(0.5)
        server = Lab(url, root, runtime, base / "server.log")
        yield server
        server.shutdown_all()
    finally:
        _stop(proc, log)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def marimo_url(tmp_path_factory, bundle):
    """`marimo run notebooks/marimo_demo.py`, headless, no token, on a free port of 127.0.0.1."""
    base = tmp_path_factory.mktemp("marimo")
    port = _free_port()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        MARIMO_SKIP_UPDATE_CHECK="1",
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_STATE_HOME=str(base / "state"),
        XDG_CACHE_HOME=str(base / "cache"),
    )
    notebook = REPO / "notebooks" / "marimo_demo.py"
    command = [sys.executable, "-m", "marimo", "run", str(notebook), "--headless", "--no-token", "--no-sandbox"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    log = open(base / "server.log", "w")  # noqa: SIM115 - stays open for the server's lifetime
    proc = subprocess.Popen(command, cwd=base, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        end = time.monotonic() + 90
        while not _answers(url):
            if time.monotonic() > end:
                pytest.fail(f"marimo did not answer on {url}: {(base / 'server.log').read_text()[-3000:]}")
            try:
                proc.wait(0.5)  # returns early only if marimo exits
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"marimo exited with {proc.returncode}: {(base / 'server.log').read_text()[-3000:]}")
        yield url
    finally:
        _stop(proc, log)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).is_file():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set HEADPURSUIT_CHROMIUM)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if call.when == "call":
        item.failed_call = outcome.get_result().failed


@pytest.fixture
def page(browser, request, artifacts):
    """A fresh browser page. On failure, test-artifacts/<test>-failure.png (screenshot), -console.txt (the
    page's console and errors) and, for tests on a Jupyter server, -server.txt (its kernels' states and
    the end of its log)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    pg = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(f"{exc.message}\n{exc.stack}"))
    pg.on("console", lambda msg: console.append(f"[{msg.type}] {msg.text}"))
    pg.js_errors = errors
    pg.dialogs = []  # texts of the JupyterLab dialogs a test closed (tests/ui/test_browser.py)
    yield pg
    if getattr(request.node, "failed_call", False):
        name = request.node.name
        pg.screenshot(path=str(artifacts / f"{name}-failure.png"), full_page=True)
        (artifacts / f"{name}-console.txt").write_text("\n".join([*console, "--- page errors ---", *errors]))
        if "lab" in request.fixturenames:
            _save_server_state(request.getfixturevalue("lab"), artifacts / f"{name}-server.txt")
    context.close()


def _save_server_state(lab: Lab, path: Path) -> None:
    """The server's sessions (kernel id, execution state) and the last 20 kB of its log."""
    try:
        sessions = json.dumps(lab.sessions(), indent=1)
    except requests.RequestException as exc:
        sessions = f"the server did not answer: {exc}"
    path.write_text(f"{sessions}\n--- server log ---\n{lab.log_path.read_text()[-20_000:]}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
