"""Helpers shared by the real-client suites."""

import time


def wait_until(condition, what, timeout=20.0, interval=0.05):
    """Polls `condition` until it returns a truthy value, at most `timeout` seconds; returns that value."""
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        attempts += 1
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not true after {timeout} s ({attempts} attempts)")
        time.sleep(interval)


def stays_true(condition, what, duration, interval=0.05):
    """Polls `condition` for `duration` seconds and fails the moment it is false: for checking that
    something does NOT happen over a window (no rebalance, no revocation), which no wait_until can."""
    deadline = time.monotonic() + duration
    while True:
        if not condition():
            raise AssertionError(f"{what}: became false within {duration} s")
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)


def free_port():
    """A 127.0.0.1 TCP port nothing listens on right now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepts(port):
    """Whether a TCP connect to 127.0.0.1:`port` succeeds."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class BrokerProcess:
    """A `spate serve` of the test's own on 127.0.0.1:`port` over `data_dir`, for tests that must kill and
    restart the broker (the suite's shared broker from $SPATE_BOOTSTRAP must outlive every test). The
    binary is $SPATE_BIN (tests/clients/run.sh exports it). The broker's output goes to `log_path`."""

    def __init__(self, binary, data_dir, log_path):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.process = None
        self.log = None

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as log:
                return "".join(log.readlines()[-lines:])
        except OSError:
            return ""

    def start(self, timeout=20.0):
        """Launches the broker and waits until its port accepts connections."""
        import os
        import subprocess

        assert self.process is None, "the broker is already running"
        self.log = open(self.log_path, "ab")
        env = dict(os.environ, RUST_LOG=os.environ.get("SPATE_LOG", "info"))
        self.process = subprocess.Popen(
            # The admin HTTP listener on a port of its own: its default one may be the suite broker's.
            [self.binary, "serve", "--listen", self.bootstrap, "--admin-listen", "127.0.0.1:0",
             "--data-dir", str(self.data_dir)],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

        def up():
            if self.process.poll() is not None:
                raise AssertionError(
                    f"the broker exited with status {self.process.returncode} during startup:\n{self.log_tail()}"
                )
            return accepts(self.port)

        wait_until(up, f"the broker accepts on {self.bootstrap}", timeout=timeout)

    def kill9(self, timeout=10.0):
        """SIGKILL, then waits until the port refuses connections: right after a kill -9 the old
        process's listeners can linger a few milliseconds (io_uring teardown)."""
        import signal

        assert self.process is not None, "the broker is not running"
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=timeout)
        self.process = None
        self.log.close()
        wait_until(lambda: not accepts(self.port), f"{self.bootstrap} refuses connections after kill -9", timeout)

    def stop(self):
        """SIGTERM, up to 10 s for a clean exit, then SIGKILL; for teardown. Returns the exit status."""
        import subprocess

        if self.process is None:
            return None
        self.process.terminate()
        try:
            status = self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            status = self.process.wait()
        self.process = None
        self.log.close()
        return status
