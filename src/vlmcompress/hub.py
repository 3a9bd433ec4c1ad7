"""Share a compressed checkpoint on the Hugging Face Hub: one commit with weights, config, processor, remote code
(when the checkpoint needs it), ``compression_report.json``, the model card and its plots.

The token comes from where ``huggingface_hub`` looks (``token=``, ``HF_TOKEN``, a saved ``hf auth login``); it is
never written into the card, the report, logs or error messages. Errors are one ``VlmcompressError`` line; the
local folder is never changed (a card naming the repo is rendered into a temp folder), and a re-run picks up
where a failed one stopped: the commit is all-or-nothing, and files the repo already holds are not sent again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from .errors import VlmcompressError
from .report import REPORT_FILENAME, WEIGHT_SUFFIXES

#: never uploaded: atomic-write leftovers and caches (hidden), Trainer's resumable checkpoints and logs (as
#: Trainer.push_to_hub skips them)
SKIP_PREFIXES = (".",)
SKIP_NAMES = {"__pycache__"}
SKIP_TOP = ("checkpoint-", "runs")


def _files(folder: Path) -> list[Path]:
    out = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(SKIP_PREFIXES) or part in SKIP_NAMES for part in rel.parts):
            continue
        if len(rel.parts) > 1 and rel.parts[0].startswith(SKIP_TOP):
            continue
        if path.is_file():
            out.append(path)
    return out


def check_folder(folder, repo_id: str | None = None) -> Path:
    """Everything a push needs, checked before anything is sent: a report that validates, a config.json that parses,
    weights whole (every safetensors header parses and covers its file, an adapter's too), and a card that renders.
    The first problem is one ``VlmcompressError`` line; nothing is uploaded."""
    from .loading import WEIGHT_FILES, check_config_file, check_weight_files
    from .report import ReportError, read_report

    folder = Path(folder)
    if not folder.is_dir():
        raise VlmcompressError(f"{folder} is not a folder: push takes a checkpoint folder written by vlmcompress")
    if not (folder / REPORT_FILENAME).is_file():
        raise VlmcompressError(f"{folder} has no {REPORT_FILENAME}: push takes a folder written by a vlmcompress "
                               "command or recipe (its report is what the model card is made from)")
    try:
        read_report(folder)
    except (ReportError, ValueError) as exc:
        raise VlmcompressError(f"{folder / REPORT_FILENAME} cannot be read: {str(exc).splitlines()[0]}") from None
    if not any(p.name.endswith(WEIGHT_SUFFIXES) for p in _files(folder)):
        raise VlmcompressError(f"{folder} has no weights (*.safetensors, *.bin): nothing to push")
    if not (folder / "config.json").is_file():
        raise VlmcompressError(f"{folder} has no config.json: nothing would load it; not pushed")
    try:
        check_config_file(folder)
        if any(p.name.endswith(WEIGHT_FILES) for p in folder.iterdir() if p.is_file()):
            check_weight_files(folder)  # safetensors/bin (an exported folder has ONNX graphs instead)
        for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(SKIP_PREFIXES + SKIP_TOP)):
            if any(f.name.endswith(".safetensors") for f in sub.iterdir() if f.is_file()):
                check_weight_files(sub)  # e.g. a QLoRA adapter in lora/
        for graph in sorted(folder.glob("*.onnx")):
            _check_onnx(graph)
    except VlmcompressError as exc:
        raise VlmcompressError(f"{exc}; not pushed") from None
    try:
        from .cards import build_card

        build_card(folder, repo_id=repo_id)
    except Exception as exc:  # noqa: BLE001 - the card is part of what is pushed
        raise VlmcompressError(f"the model card of {folder} does not render ({type(exc).__name__}: {_one_line(exc)}); "
                               "not pushed") from None
    return folder


def _check_onnx(path: Path) -> None:
    """An ONNX graph that parses (a truncated upload would load nowhere)."""
    try:
        import onnx

        onnx.load(str(path), load_external_data=False)
    except ImportError:
        return  # without onnx installed the graph cannot be checked here; it is uploaded as it is
    except Exception as exc:  # noqa: BLE001 - protobuf's decode errors
        raise VlmcompressError(f"{path} is damaged or truncated ({type(exc).__name__}): export it again") from None


def _scrub(text: str, tokens) -> str:
    for token in tokens:
        if token and len(token) >= 4:
            text = text.replace(token, "***")
    return text


def _one_line(exc) -> str:
    text = str(exc).strip()
    return next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)


def _hub_error(exc, repo_id: str, endpoint: str, token_given: bool) -> str:
    """One actionable line for a failure talking to the Hub (the token is scrubbed by the caller)."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to push to the Hub"
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        server = exc.server_message or ""
        server = f" ({server.splitlines()[0]})" if server.strip() else ""
        if status == 401:
            how = "the token was refused" if token_given else "no valid token was found"
            return (f"the Hub at {endpoint} answered 401 Unauthorized for {repo_id}: {how}{server}; log in with "
                    "`hf auth login` or set HF_TOKEN to a token with write access, then re-run")
        if status == 403:
            return (f"the Hub at {endpoint} answered 403 Forbidden for {repo_id}{server}: the token has no write access "
                    "to that namespace; use a write token for it or another --repo-id, then re-run")
        if status == 404:
            return (f"the Hub at {endpoint} answered 404 for {repo_id}{server}: the repo or branch does not exist or "
                    "the token cannot see it")
        if status in (400, 422) and server:
            return f"the Hub at {endpoint} rejected the push to {repo_id} ({status}){server}"
        return f"the Hub at {endpoint} answered {status} for {repo_id}{server}; re-run to retry"
    return (f"cannot reach the Hub at {endpoint} ({type(exc).__name__}: {_one_line(exc)}); check the network or "
            "HF_ENDPOINT, then re-run")


def _network_errors():
    errors = [OSError, ConnectionError, TimeoutError]
    for module in ("httpx2", "httpx", "requests"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        for name in ("HTTPError", "TransportError", "RequestException", "RequestError"):
            cls = getattr(getattr(mod, "exceptions", mod), name, None) or getattr(mod, name, None)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                errors.append(cls)
    return tuple(errors)


def _operations(folder: Path, repo_id: str, scratch: Path, add) -> list:
    """One addition per file; a generated card (or a missing one) is rendered into ``scratch`` naming ``repo_id``."""
    from .cards import CARD_FILENAME, is_generated, write_card

    card_path = folder / CARD_FILENAME
    rendered = {}
    if not card_path.exists() or is_generated(card_path):
        write_card(folder, repo_id=repo_id, output_dir=scratch)  # beside, never over, the local folder
        rendered = {p.name: p for p in scratch.iterdir() if p.is_file()}
    ops = [add(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
           for p in _files(folder) if p.relative_to(folder).as_posix() not in rendered]
    return ops + [add(path_in_repo=name, path_or_fileobj=str(p)) for name, p in rendered.items()]


def push_folder(folder, repo_id: str, *, private: bool = False, revision: str | None = None,
                commit_message: str | None = None, token: str | None = None) -> str:
    """Create ``repo_id`` if needed (and the branch ``revision``) and commit the folder to it; return its URL.

    A generated card (``README.md`` made by ``write_card``, or none) is rendered afresh with ``repo_id`` in its
    loading snippet; a hand-written ``README.md`` is uploaded as it is.
    """
    from huggingface_hub import CommitOperationAdd, HfApi, constants
    from huggingface_hub.errors import HFValidationError, HfHubHTTPError
    from huggingface_hub.utils import get_token, validate_repo_id

    folder = check_folder(folder, repo_id)
    try:
        validate_repo_id(repo_id)
        if not repo_id or repo_id.endswith(".git"):
            raise HFValidationError("expected 'name' or 'namespace/name'")
    except HFValidationError as exc:
        raise VlmcompressError(f"invalid repo id {repo_id!r}: {_one_line(exc)} (expected 'name' or 'namespace/name': "
                               "letters, digits, '-', '_', '.', at most 96 characters, no '--' or '..')") from None
    endpoint = constants.ENDPOINT
    secrets = [token, get_token()]
    api = HfApi(endpoint=endpoint, token=token)
    message = commit_message or f"Upload {repo_id.split('/')[-1]} compressed with vlmcompress"

    with tempfile.TemporaryDirectory(prefix="vlmcompress-push-") as tmp:
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            full_id = getattr(url, "repo_id", None) or repo_id  # "name" alone lands in the token's namespace
            if revision:
                api.create_branch(full_id, branch=revision, exist_ok=True)
            try:
                operations = _operations(folder, full_id, Path(tmp), CommitOperationAdd)
            except Exception as exc:  # noqa: BLE001 - not a Hub failure: say what it is
                raise VlmcompressError(f"cannot render the model card of {folder}: {type(exc).__name__}: "
                                       f"{_one_line(exc)}") from exc
            api.create_commit(full_id, operations, commit_message=message, revision=revision)
        except HFValidationError as exc:
            raise VlmcompressError(_scrub(f"invalid repo id {repo_id!r}: {_one_line(exc)}", secrets)) from None
        except HfHubHTTPError as exc:
            raise VlmcompressError(_scrub(_hub_error(exc, repo_id, endpoint, bool(token or secrets[1])), secrets)) from None
        except ValueError as exc:  # e.g. the Hub refused the card's metadata (validate-yaml)
            raise VlmcompressError(_scrub(f"the Hub at {endpoint} refused the push to {repo_id}: {_one_line(exc)}",
                                          secrets)) from None
        except _network_errors() as exc:
            raise VlmcompressError(_scrub(_hub_error(exc, repo_id, endpoint, bool(token)), secrets)) from None
    base = str(url).rstrip("/")
    return f"{base}/tree/{revision}" if revision else base


def check_push_token(repo_id: str, token: str | None = None) -> str:
    """Before any work that ends in a push: the Hub must be reachable and accept the token (``whoami``), so a bad
    token or no network fails at once, not after every stage; returns the account name."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import HfHubHTTPError
    from huggingface_hub.utils import get_token

    secrets = [token, get_token()]
    if not (token or secrets[1]):
        raise VlmcompressError(f"push: to {repo_id} needs a Hub token: set HF_TOKEN or run `hf auth login` (or drop "
                               "the push); nothing was run")
    endpoint = constants.ENDPOINT
    try:
        who = HfApi(endpoint=endpoint, token=token).whoami()
    except (HfHubHTTPError, *_network_errors()) as exc:
        raise VlmcompressError(_scrub(f"push: {_hub_error(exc, repo_id, endpoint, True)}; nothing was run",
                                      secrets)) from None
    return str(who.get("name", ""))


def push_if_requested(training_args, folder, *, requested: bool | None = None) -> str | None:
    """Push a recipe's finished output folder when ``--push_to_hub`` was given; return the URL or None.

    Uses TrainingArguments' own flags: ``hub_model_id`` (default: the output folder's name), ``hub_private_repo``,
    ``hub_token`` and ``hub_revision``. Build the Trainer with ``without_push(training_args)`` so it does not push
    half-written checkpoints itself; the folder is pushed once, complete, with its card. A recipe that turned
    ``training_args.push_to_hub`` off in place passes what the user asked for as ``requested``.
    """
    if not (getattr(training_args, "push_to_hub", False) if requested is None else requested):
        return None
    repo_id = getattr(training_args, "hub_model_id", None) or Path(str(training_args.output_dir)).name
    return push_folder(folder, repo_id, private=bool(getattr(training_args, "hub_private_repo", None)),
                       revision=getattr(training_args, "hub_revision", None),
                       token=getattr(training_args, "hub_token", None))


def without_push(training_args):
    """A copy of TrainingArguments with ``push_to_hub`` off, for the Trainer (``push_if_requested`` pushes at the end)."""
    import copy

    if not getattr(training_args, "push_to_hub", False):
        return training_args
    args = copy.copy(training_args)
    args.push_to_hub = False
    return args


__all__ = ["push_folder", "push_if_requested", "without_push", "check_folder", "check_push_token"]
