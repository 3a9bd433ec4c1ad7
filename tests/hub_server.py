"""A small Hugging Face Hub on 127.0.0.1 for tests: the part of the HTTP API that ``huggingface_hub`` and
``transformers`` use to create a repo, commit files to it (and to a branch) and download them again.

It speaks real HTTP to the real client (``HF_ENDPOINT=http://127.0.0.1:PORT``); nothing is patched. Files are
committed "regular" (base64 inside the NDJSON commit, no LFS/Xet), stored content-addressed under a folder.

    with HubServer(tmp_path / "hub") as hub:          # hub.endpoint, hub.requests (method, path, status)
        ...
    HubServer(root, token="hf_secret")                 # writes without that bearer token get 401
    HubServer(root, forbidden_namespaces={"acme"})     # creating repos there gets 403

Run it by hand: ``python tests/hub_server.py ROOT [PORT]``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Error(Exception):
    def __init__(self, status, message, code=None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubStore:
    """Repos as {branch: commit}; a commit is {"parent", "message", "files": {path: blob sha1}}."""

    def __init__(self, root):
        self.root = Path(root)
        (self.root / "blobs").mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def _repo_dir(self, repo_id):
        return self.root / "repos" / repo_id

    def exists(self, repo_id):
        return (self._repo_dir(repo_id) / "repo.json").is_file()

    def meta(self, repo_id):
        if not self.exists(repo_id):
            raise _Error(404, "Repository not found", "RepoNotFound")
        return json.loads((self._repo_dir(repo_id) / "repo.json").read_text())

    def _save_meta(self, repo_id, meta):
        (self._repo_dir(repo_id) / "repo.json").write_text(json.dumps(meta))

    def create(self, repo_id, private):
        with self.lock:
            if self.exists(repo_id):
                raise _Error(409, "You already created this model repo")
            self._repo_dir(repo_id).mkdir(parents=True)
            first = self._write_commit({"parent": None, "message": "initial commit", "files": {}})
            self._save_meta(repo_id, {"private": bool(private), "branches": {"main": first}})

    def _write_commit(self, commit):
        commit = dict(commit, time=time.time())
        oid = hashlib.sha1(json.dumps(commit, sort_keys=True).encode()).hexdigest()
        (self.root / "commits").mkdir(exist_ok=True)
        (self.root / "commits" / oid).write_text(json.dumps(commit))
        return oid

    def commit_data(self, oid):
        return json.loads((self.root / "commits" / oid).read_text())

    def resolve(self, repo_id, revision):
        """Branch name or commit oid -> commit oid."""
        meta = self.meta(repo_id)
        revision = unquote(revision or "main")
        if revision in meta["branches"]:
            return meta["branches"][revision]
        if re.fullmatch(r"[0-9a-f]{40}", revision) and (self.root / "commits" / revision).is_file():
            return revision
        raise _Error(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    def files(self, repo_id, revision):
        oid = self.resolve(repo_id, revision)
        return oid, self.commit_data(oid)["files"]

    def blob(self, sha):
        return (self.root / "blobs" / sha).read_bytes()

    def commit(self, repo_id, revision, header, ops):
        with self.lock:
            meta = self.meta(repo_id)
            branch = unquote(revision or "main")
            if branch not in meta["branches"]:
                raise _Error(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent = meta["branches"][branch]
            if header.get("parentCommit") and header["parentCommit"] != parent:
                raise _Error(412, "A commit has happened since. Please refresh and try again.")
            files = dict(self.commit_data(parent)["files"])
            for key, value in ops:
                path = value["path"]
                if key == "file":
                    data = base64.b64decode(value["content"]) if value.get("encoding") == "base64" else value["content"].encode()
                    sha = git_blob_sha1(data)
                    (self.root / "blobs" / sha).write_bytes(data)
                    files[path] = sha
                elif key == "deletedFile":
                    if path not in files:
                        raise _Error(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                    del files[path]
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    files = {p: s for p, s in files.items() if not p.startswith(prefix)}
                else:  # lfsFile: this server answers "regular" at preupload, so a client never sends one
                    raise _Error(400, f"this test Hub does not accept {key} operations")
            oid = self._write_commit({"parent": parent, "message": header.get("summary", ""), "files": files})
            meta["branches"][branch] = oid
            self._save_meta(repo_id, meta)
            return oid

    def create_branch(self, repo_id, branch, starting_point):
        with self.lock:
            meta = self.meta(repo_id)
            if branch in meta["branches"]:
                raise _Error(409, f"Reference already exists: refs/heads/{branch}")
            meta["branches"][branch] = self.resolve(repo_id, starting_point or "main")
            self._save_meta(repo_id, meta)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vlmcompress-test-hub/1"

    def log_message(self, format, *args):  # noqa: A002 - quiet; requests are recorded instead
        pass

    # -- plumbing -----------------------------------------------------------------------------------------------
    @property
    def hub(self) -> "HubServer":
        return self.server.hub  # type: ignore[attr-defined]

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status, body=b"", headers=None, head=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)
        self.hub.requests.append((self.command, self.path, status))

    def _authorized(self) -> bool:
        if self.hub.token is None:
            return True
        return self.headers.get("Authorization") == f"Bearer {self.hub.token}"

    def _dispatch(self):
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        body = self._body() if self.command in ("POST", "PUT", "DELETE") else b""
        try:
            for method, pattern, handler in self.ROUTES:
                if method == self.command or (method == "GET" and self.command == "HEAD"):
                    m = re.fullmatch(pattern, path)
                    if m:
                        return handler(self, *[unquote(g) if g is not None else None for g in m.groups()],
                                       body=body, query=query)
            self.hub.unrouted.append((self.command, self.path))
            raise _Error(404, f"no route for {self.command} {path}")
        except _Error as err:
            headers = {"X-Error-Message": err.message}
            if err.code:
                headers["X-Error-Code"] = err.code
            self._send(err.status, {"error": err.message}, headers, head=self.command == "HEAD")

    do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _dispatch

    def _require_write(self, repo_id=None):
        if not self._authorized():
            raise _Error(401, "Invalid credentials in Authorization header")
        if repo_id and repo_id.split("/")[0] in self.hub.forbidden_namespaces:
            raise _Error(403, f"You don't have the rights to create a model under the namespace \"{repo_id.split('/')[0]}\"")

    def _require_read(self, repo_id):
        meta = self.hub.store.meta(repo_id)
        if meta["private"] and not self._authorized():
            raise _Error(404, "Repository not found", "RepoNotFound")

    # -- API ----------------------------------------------------------------------------------------------------
    def create_repo(self, body, query):
        payload = json.loads(body or b"{}")
        name, org = payload.get("name") or "", payload.get("organization")
        if payload.get("type", "model") != "model":
            raise _Error(400, "this test Hub only hosts model repos")
        namespace = org or "user"
        repo_id = f"{namespace}/{name}"
        self._require_write(repo_id)
        if not NAME_RE.match(name) or (org and not NAME_RE.match(org)):
            raise _Error(400, f"Invalid repo name: {repo_id}")
        private = payload.get("visibility") == "private" or bool(payload.get("private"))
        url = f"{self.hub.endpoint}/{repo_id}"
        try:
            self.hub.store.create(repo_id, private)
        except _Error as err:
            if err.status == 409:
                return self._send(409, {"error": err.message, "url": url}, {"X-Error-Message": err.message})
            raise
        self._send(200, {"url": url, "name": repo_id, "id": repo_id})

    def validate_yaml(self, body, query):
        content = json.loads(body).get("content", "")
        errors = []
        if content.startswith("---"):
            import yaml

            try:
                meta = yaml.safe_load(content.split("---", 2)[1])
                if meta is not None and not isinstance(meta, dict):
                    errors.append({"message": "metadata must be a mapping"})
            except (yaml.YAMLError, IndexError) as exc:
                errors.append({"message": f"invalid YAML: {exc}"})
        self.hub.validated_cards.append(content)
        if errors:
            raise _Error(400, "; ".join(e["message"] for e in errors))
        self._send(200, {"errors": [], "warnings": []})

    def preupload(self, repo_id, revision, body, query):
        self._require_write()
        _, files = self.hub.store.files(repo_id, revision)
        out = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": files.get(f["path"])}
               for f in json.loads(body)["files"]]
        self._send(200, {"files": out, "commitOid": self.hub.store.resolve(repo_id, revision)})

    def commit(self, repo_id, revision, body, query):
        self._require_write()
        self.hub.store.meta(repo_id)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        header = next((item["value"] for item in lines if item["key"] == "header"), {})
        ops = [(item["key"], item["value"]) for item in lines if item["key"] != "header"]
        oid = self.hub.store.commit(repo_id, revision, header, ops)
        self.hub.commits.append({"repo_id": repo_id, "revision": unquote(revision), "summary": header.get("summary"),
                                 "paths": [v["path"] for _, v in ops]})
        self._send(200, {"commitOid": oid, "commitUrl": f"{self.hub.endpoint}/{repo_id}/commit/{oid}",
                         "success": True})

    def create_branch(self, repo_id, branch, body, query):
        self._require_write()
        payload = json.loads(body or b"{}")
        self.hub.store.create_branch(repo_id, branch, payload.get("startingPoint"))
        self._send(200, {})

    def refs(self, repo_id, body, query):
        self._require_read(repo_id)
        meta = self.hub.store.meta(repo_id)
        self._send(200, {"branches": [{"name": b, "ref": f"refs/heads/{b}", "targetCommit": c}
                                      for b, c in meta["branches"].items()], "converts": [], "tags": []})

    def model_info(self, repo_id, revision, body, query):
        self._require_read(repo_id)
        oid, files = self.hub.store.files(repo_id, revision)
        meta = self.hub.store.meta(repo_id)
        self._send(200, {
            "id": repo_id, "_id": repo_id, "modelId": repo_id, "author": repo_id.split("/")[0], "sha": oid,
            "private": meta["private"], "disabled": False, "gated": False, "tags": [], "downloads": 0, "likes": 0,
            "lastModified": "2025-01-01T00:00:00.000Z",
            "siblings": [{"rfilename": p} for p in sorted(files)],
        })

    def _entries(self, repo_id, revision, prefix, recursive):
        _, files = self.hub.store.files(repo_id, revision)
        prefix = (prefix or "").strip("/")
        base = prefix + "/" if prefix else ""
        if prefix and prefix in files:
            raise _Error(400, f"{prefix} is a file, not a folder")
        entries, folders = [], set()
        for path in sorted(files):
            if not path.startswith(base):
                continue
            rest = path[len(base):]
            if "/" in rest and not recursive:
                folders.add(base + rest.split("/")[0])
                continue
            if recursive:
                parts = path.split("/")
                folders.update("/".join(parts[:i]) for i in range(len(base.split("/")) if base else 1, len(parts)))
            size = (self.hub.store.root / "blobs" / files[path]).stat().st_size
            entries.append({"type": "file", "oid": files[path], "size": size, "path": path})
        if prefix and not entries and not folders:
            raise _Error(404, f"{prefix} does not exist on this revision", "EntryNotFound")
        return [{"type": "directory", "oid": "0" * 40, "size": 0, "path": f} for f in sorted(folders - {""})] + entries

    def tree(self, repo_id, revision, subpath, body, query):
        self._require_read(repo_id)
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        self._send(200, self._entries(repo_id, revision, subpath, recursive))

    def paths_info(self, repo_id, revision, body, query):
        self._require_read(repo_id)
        _, files = self.hub.store.files(repo_id, revision)
        try:
            wanted = json.loads(body).get("paths", [])
        except ValueError:
            wanted = parse_qs(body.decode()).get("paths", [])
        out = []
        for p in wanted:
            if p in files:
                out.append({"type": "file", "oid": files[p], "path": p,
                            "size": (self.hub.store.root / "blobs" / files[p]).stat().st_size})
            elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                out.append({"type": "directory", "oid": "0" * 40, "size": 0, "path": p})
        self._send(200, out)

    def resolve(self, repo_id, revision, filename, body, query):
        self._require_read(repo_id)
        oid, files = self.hub.store.files(repo_id, revision)
        if filename not in files:
            raise _Error(404, "Entry not found", "EntryNotFound")
        data = self.hub.store.blob(files[filename])
        headers = {"X-Repo-Commit": oid, "ETag": f'"{files[filename]}"', "Content-Length": str(len(data)),
                   "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        rng = self.headers.get("Range")
        if rng and self.command == "GET":
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(data) - 1
                part = data[start:end + 1]
                headers.update({"Content-Length": str(len(part)), "Content-Range": f"bytes {start}-{end}/{len(data)}"})
                return self._send(206, part, headers)
        self._send(200, data, headers, head=self.command == "HEAD")

    def whoami(self, body, query):
        if not self._authorized():
            raise _Error(401, "Invalid credentials in Authorization header")
        self._send(200, {"type": "user", "name": "user", "orgs": [], "auth": {"type": "access_token"}})

    def agent_harnesses(self, body, query):
        self._send(200, {"standardEnvVars": [], "harnesses": {}})

    def organization_overview(self, org, body, query):
        # bitsandbytes (through the ``kernels`` package, on AVX512-BF16 CPUs) asks whether kernels-community publishes
        # trusted kernels before fetching its CPU kernel: this Hub has no organizations, as the Hub answers for an
        # unknown one, and bitsandbytes falls back to its own CPU code
        raise _Error(404, f"Organization {org} not found")

    REPO = r"([^/]+/[^/]+)"
    ROUTES = [
        ("POST", r"/api/repos/create", create_repo),
        ("POST", r"/api/validate-yaml", validate_yaml),
        ("GET", r"/api/whoami-v2", whoami),
        ("GET", r"/api/agent-harnesses", agent_harnesses),
        ("GET", r"/api/organizations/([^/]+)/overview", organization_overview),
        ("POST", rf"/api/models/{REPO}/preupload/([^/]+)", preupload),
        ("POST", rf"/api/models/{REPO}/commit/([^/]+)", commit),
        ("POST", rf"/api/models/{REPO}/branch/([^/]+)", create_branch),
        ("GET", rf"/api/models/{REPO}/refs", refs),
        ("GET", rf"/api/models/{REPO}(?:/revision/([^/]+))?", model_info),
        ("GET", rf"/api/models/{REPO}/tree/([^/]+)(?:/(.*))?", tree),
        ("POST", rf"/api/models/{REPO}/paths-info/([^/]+)", paths_info),
        ("GET", rf"/{REPO}/resolve/([^/]+)/(.+)", resolve),
    ]


class HubServer:
    """``with HubServer(root) as hub:`` serves on an ephemeral port of 127.0.0.1 until the block ends."""

    def __init__(self, root, *, token=None, forbidden_namespaces=(), port=0):
        self.store = HubStore(root)
        self.token = token
        self.forbidden_namespaces = set(forbidden_namespaces)
        self.requests: list = []
        self.commits: list = []
        self.validated_cards: list = []
        self.unrouted: list = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self
        self.port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


if __name__ == "__main__":
    import sys

    hub = HubServer(sys.argv[1], port=int(sys.argv[2]) if len(sys.argv) > 2 else 0).start()
    print(f"HF_ENDPOINT={hub.endpoint}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()
