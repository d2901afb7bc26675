"""A throwaway PostgreSQL server for the database tests.

initdb into a fresh folder under /tmp, then `postgres` on a random port on 127.0.0.1 with its
Unix socket in that folder, so the tests neither need nor disturb a cluster the machine may
run on 5432. initdb and postgres refuse to run as root: as root, the folder belongs to the
`postgres` system user and the server binaries run as that user (runuser). Clients (psql,
moonwire) connect over TCP with a password.
"""
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time

import mwtest

PASSWORD = "pw-for-tests"
USER = "postgres"


def find_bindir():
    """The folder holding initdb, pg_ctl and psql (the newest installed version), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                        key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates.reverse()
    found = shutil.which("pg_config")
    if found:
        try:
            candidates.append(subprocess.run([found, "--bindir"], capture_output=True, text=True,
                                             timeout=10).stdout.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    for d in candidates:
        if d and all(os.access(os.path.join(d, b), os.X_OK) for b in ("initdb", "pg_ctl", "psql", "postgres")):
            return d
    return None


class PgServer:
    """One cluster: start()/stop() may be called again (the restart test); destroy() at the end."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = tempfile.mkdtemp(prefix="moonwire-pg-")
        self.data = os.path.join(self.dir, "data")
        self.logfile = os.path.join(self.dir, "server.log")
        self.port = mwtest.free_port()
        self.as_user = []
        self._dbs = 0
        if os.geteuid() == 0:
            pw = pwd.getpwnam(USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self.as_user = ["runuser", "-u", USER, "--"]
        os.chmod(self.dir, 0o700)
        pwfile = os.path.join(self.dir, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        if self.as_user:
            os.chown(pwfile, pwd.getpwnam(USER).pw_uid, -1)
        self._server_cmd([os.path.join(bindir, "initdb"), "-D", self.data, "-U", USER, "-E", "UTF8",
                          "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=scram-sha-256",
                          "--pwfile", pwfile, "-N"], timeout=120)

    def _server_cmd(self, argv, timeout=60):
        proc = subprocess.run(self.as_user + argv, capture_output=True, text=True, timeout=timeout,
                              cwd=self.dir, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                               f"{self.log()}")
        return proc.stdout

    def log(self):
        try:
            with open(self.logfile, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def start(self):
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c synchronous_commit=off -c full_page_writes=off")
        self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-o", opts, "-l", self.logfile,
                          "-w", "-t", "60", "start"], timeout=90)

    def stop(self, mode="fast"):
        """Stops the server (fast: open sessions are terminated, as in a real restart)."""
        self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "-t", "60",
                          "stop"], timeout=90)

    def running(self):
        return os.path.exists(os.path.join(self.data, "postmaster.pid"))

    def destroy(self):
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def psql(self, sql, db="postgres"):
        env = dict(os.environ, PGPASSWORD=PASSWORD, PGCONNECT_TIMEOUT="10")
        proc = subprocess.run([os.path.join(self.bindir, "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                               USER, "-d", db, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"psql {sql!r} failed: {proc.stderr}")
        return proc.stdout

    def create_database(self):
        """A new empty database (each test gets its own); returns its name."""
        self._dbs += 1
        name = f"t{self._dbs}"
        self.psql(f"CREATE DATABASE {name}")
        return name

    def url(self, db, password=PASSWORD):
        return f"postgres://{USER}:{password}@127.0.0.1:{self.port}/{db}"


def wait_until_up(server, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.psql("SELECT 1")
            return
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
