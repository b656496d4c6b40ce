"""Getting and starting a real `tritonserver` outside NVIDIA's container.

The `nvidia-pytriton` wheel carries tritonserver 2.51 with its Python backend; we take the binary
only (its Python package pins numpy < 2 and an old tritonclient). The Python-backend stub links the
system's libpython 3.11 and ignores PYTHONPATH, so our model runs in a venv made by that Python
(`EXECUTION_ENV_PATH`), with numpy < 2 (with numpy 2 the 2.51 stub misreads string tensors) and the
package linked in. Both are prepared once into a cache folder. When the Python running this is a
3.11 too, the venv installs only numpy and sees the rest (torch, transformers, ...) in this Python's
site-packages through a `.pth` file, behind its own numpy (an install of everything took a minute).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import trtllm_mixquant

PYTRITON = "nvidia-pytriton==0.7.0"
STUB_PYTHON = "3.11"
STUB_NUMPY = "numpy<2"
STUB_REQUIREMENTS = [STUB_NUMPY, f"torch=={version('torch').split('+')[0]}", "transformers", "tokenizers",
                     "safetensors", "jinja2", "tqdm"]


class TritonSetupError(RuntimeError):
    """tritonserver or its Python environment could not be prepared."""


def cache_dir() -> Path:
    return Path(os.environ.get("TRTLLM_MIXQUANT_CACHE", Path.home() / ".cache" / "trtllm-mixquant")) / "triton"


@dataclass(frozen=True)
class ServerFiles:
    root: Path  # the unpacked wheel

    @property
    def binary(self) -> Path:
        return self.root / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.root / "pytriton" / "tritonserver" / "backends"

    @property
    def libraries(self) -> Path:
        return self.root / "nvidia_pytriton.libs"


def install_server(cache: Path | None = None) -> ServerFiles:
    """Download and unpack the wheel (55 MB) once; put the 3.11 stub into the Python backend."""
    root = (cache or cache_dir()) / PYTRITON.replace("==", "-")
    files = ServerFiles(root)
    if files.binary.is_file():
        return files
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", PYTRITON, "-d", tmp],
            f"could not download {PYTRITON} (it carries the tritonserver binary)")
        (wheel,) = Path(tmp).glob("*.whl")
        partial = root.with_name(root.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        with zipfile.ZipFile(wheel) as z:
            z.extractall(partial)
        stubs = partial / "pytriton" / "tritonserver"
        shutil.copy2(stubs / "python_backend_stubs" / STUB_PYTHON / "triton_python_backend_stub",
                     stubs / "backends" / "python")
        for path in (stubs / "bin" / "tritonserver", stubs / "backends" / "python" / "triton_python_backend_stub"):
            path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.rename(root)
    return files


def stub_python() -> str:
    """The Python the stub links (Debian's /usr/bin/python3.11 here; pyenv builds lack its symbols)."""
    for candidate in (f"/usr/bin/python{STUB_PYTHON}", f"/usr/local/bin/python{STUB_PYTHON}"):
        if Path(candidate).is_file():
            return candidate
    raise TritonSetupError(f"tritonserver 2.51's Python backend needs a system Python {STUB_PYTHON} "
                           f"(e.g. `apt install python{STUB_PYTHON}-venv`); none was found")


def borrowed_site_packages() -> Path | None:
    """This Python's site-packages where the stub's Python can import from them (the same 3.11)."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" != STUB_PYTHON:
        return None
    return Path(sysconfig.get_paths()["purelib"])


def prepare_env(cache: Path | None = None) -> Path:
    """A venv for the stub with what the model imports, and this package linked in (kept up to date)."""
    env = (cache or cache_dir()) / f"stub-env-py{STUB_PYTHON}"
    stamp = env / "requirements.txt"
    borrowed = borrowed_site_packages()
    requirements = STUB_REQUIREMENTS if borrowed is None else [STUB_NUMPY]
    wanted = "\n".join(requirements + ([] if borrowed is None else [f"# and {borrowed}"])) + "\n"
    if not (stamp.is_file() and stamp.read_text() == wanted):
        shutil.rmtree(env, ignore_errors=True)
        run([stub_python(), "-m", "venv", str(env)], "could not create the stub's venv")
        run([str(env / "bin" / "pip"), "install", "-q", *requirements], "could not install the stub's packages")
        stamp.write_text(wanted)
    (site,) = (env / "lib").glob("python*/site-packages")
    if borrowed is not None:
        (site / "borrowed-site-packages.pth").write_text(f"{borrowed}\n")  # after the venv's own numpy
    link = site / "trtllm_mixquant"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(Path(trtllm_mixquant.__file__).parent)
    return env


def run(command: list[str], failure: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise TritonSetupError(f"{failure}: {(done.stderr or done.stdout).strip()[-800:]}")


@dataclass(frozen=True)
class Ports:
    http: int = 8000
    grpc: int = 8001
    metrics: int = 8002


def start_server(files: ServerFiles, repository: Path, ports: Ports, host: str = "127.0.0.1",
                 log=None) -> subprocess.Popen:
    """tritonserver on `host` (loopback by default), serving every model of `repository`."""
    env = {**os.environ, "LD_LIBRARY_PATH": f"{files.libraries}:{os.environ.get('LD_LIBRARY_PATH', '')}"}
    env.pop("TRITON_INTERPRET", None)
    command = [str(files.binary), "--model-repository", str(repository), "--backend-directory", str(files.backends),
               "--http-address", host, "--grpc-address", host, "--metrics-address", host,
               "--http-port", str(ports.http), "--grpc-port", str(ports.grpc), "--metrics-port", str(ports.metrics),
               "--allow-cpu-metrics=true", "--allow-gpu-metrics=false", "--exit-on-error=true"]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT if log else None)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300.0) -> float:
    """Seconds until `url`/v2/health/ready answers 200; raises if the server exits or times out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if process.poll() is not None:
            raise TritonSetupError(f"tritonserver exited with code {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.5)
    raise TritonSetupError(f"tritonserver was not ready after {timeout:.0f} s")
