"""The code policy: what a ``module:attr`` reference of a config may import and call.

A reference runs code, so :func:`trainlab.user_code.import_reference` decides *before importing*, under the
:class:`CodePolicy` in force (a context variable: :func:`code_policy`, :func:`command_code_policy` and
:func:`run_code_policy` set it for a block):

- the user's own modules, i.e. modules whose file lies in a *local folder*
  (the working directory and folders added with :func:`allow_local_modules`,
  e.g. the config's folder) and not in the standard library or site-packages,
  are allowed;
- trainlab's own modules are allowed only for a target that is a registered
  factory of some registry (the same thing a plain name reaches);
- everything else (the standard library, installed third-party packages, code
  anywhere else) is refused with one line unless code is allowed: the CLI's
  ``--allow-code`` flag, ``TRAINLAB_ALLOW_CODE=1`` (:data:`ALLOW_CODE_ENV`), or ``code_policy(allow=True)``;
  the refusal names the opt-in of its caller (``--allow-code`` under a CLI command, ``code_policy(allow=True)``
  from Python);
- ``code_policy(local=False)`` trusts no folder: the mode for a config read
  from a run folder (``eval``/``resume``), which may come from someone else; with the opt-in, the folders
  the run was trained from (``code_folders`` in its run.json) are importable (:func:`run_code_policy`),
  and a run ``compare`` just planned from the user's own configs is read as those configs are
  (:func:`trusting_runs`).

Whatever the policy, the target must have a factory's shape: a class or a
Python function (not a module, not a builtin like ``os.system``), reached
through public attributes only.

The commands that messages hand the user to continue a run (:func:`resume_command_words`) name the opt-in
where the run's config names such code: a "continue with" hint pastes and works as printed.

This module only holds and scopes the policy (and puts its folders on ``sys.path``); it imports nothing of
the user's.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ALLOW_CODE_ENV = "TRAINLAB_ALLOW_CODE"


@dataclass(frozen=True)
class CodePolicy:
    """What ``module:attr`` references may reach (see the module docstring)."""

    allow: bool | None = None  # True: --allow-code, any importable module; None: TRAINLAB_ALLOW_CODE decides;
    # False: refused whatever the environment says (load_run(..., allow_code=False))
    local: bool = True  # False: no folder counts as the user's own (config from a run folder)
    folders: tuple[Path, ...] = field(default=())  # local folders besides the working directory
    cli: bool = False  # set by a CLI command (command_code_policy): a refusal names --allow-code, else the Python opt-in
    gone: tuple[str, ...] = ()  # a run's recorded code folders that no longer exist (run_code_policy), for "no module"


_POLICY: contextvars.ContextVar[CodePolicy] = contextvars.ContextVar(
    "trainlab_code_policy", default=CodePolicy())  # noqa: B039 -- frozen, so sharing it is safe


def current_policy() -> CodePolicy:
    """The policy in force, its ``allow`` a bool: left undecided (None), :data:`ALLOW_CODE_ENV` decides it;
    an explicit False (``load_run(..., allow_code=False)``) wins over the environment."""
    policy = _POLICY.get()
    if policy.allow is None:
        allowed = os.environ.get(ALLOW_CODE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}
        policy = replace(policy, allow=allowed)
    return policy


def set_policy(policy: CodePolicy) -> None:
    """Make ``policy`` this process's code policy for good (a compare worker takes its parent's), its
    folders importable as :func:`allow_local_modules` makes them."""
    _POLICY.set(policy)
    for folder in policy.folders:
        if str(folder) not in sys.path:
            sys.path.append(str(folder))


@contextlib.contextmanager
def code_policy(allow: bool | None = None, local: bool | None = None, cli: bool | None = None) -> Iterator[CodePolicy]:
    """Within the block, ``allow=True`` opts into any code, ``False`` refuses it even with
    :data:`ALLOW_CODE_ENV` set (None: keep); ``local=False`` trusts no folder; ``cli=True``: a CLI
    command's block, whose refusals name ``--allow-code`` (None: keep).

    ``with code_policy(allow=args.allow_code):`` around a CLI command; ``with code_policy(local=False):``
    around building a config read from a run folder (eval/resume), so that only the opt-in runs its code.
    """
    now = _POLICY.get()
    policy = replace(now, allow=now.allow if allow is None else allow, local=now.local if local is None else local,
                     cli=now.cli if cli is None else cli)
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


@contextlib.contextmanager
def allow_local_modules(folder: str | os.PathLike[str]) -> Iterator[Path]:
    """Treat ``folder`` (the user's config folder) as the user's code: importable and allowed.

    Appends it to ``sys.path`` (after everything installed, so it shadows nothing) for the block.
    """
    path = Path(folder).resolve()
    now = _POLICY.get()
    token = _POLICY.set(replace(now, folders=(*now.folders, path)))
    added = str(path) not in sys.path
    if added:
        sys.path.append(str(path))
    try:
        yield path
    finally:
        _POLICY.reset(token)
        if added and str(path) in sys.path:
            sys.path.remove(str(path))


@contextlib.contextmanager
def command_code_policy(allow: bool, config: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
                        run_dir: str | os.PathLike[str] | None = None) -> Iterator[CodePolicy]:
    """The policy of one CLI command: the user's ``config`` (or configs: compare's bases) trusts its
    folder and the working directory (all importable); a ``run_dir``'s config trusts no folder (with
    ``allow``, the folders the run was trained from are importable and then the working directory, in that
    order, as :func:`trainlab.inference.load_run` looks: a module of the same name in the working directory
    does not stand in for the run's own). Its refusals name ``--allow-code`` (``cli``)."""
    configs = [] if config is None else [config] if isinstance(config, str | os.PathLike) else list(config)
    with contextlib.ExitStack() as stack:
        policy = stack.enter_context(code_policy(allow=allow or None, local=False if run_dir is not None else None,
                                                 cli=True))
        if run_dir is None:
            stack.enter_context(allow_local_modules(Path.cwd()))
            for folder in dict.fromkeys(Path(path).parent.resolve() for path in configs):
                stack.enter_context(allow_local_modules(folder))
        elif allow:  # run_code_policy adds the run's folders again inside: they must already come first here
            for folder in recorded_code_folders(run_dir):
                stack.enter_context(allow_local_modules(folder))
            stack.enter_context(allow_local_modules(Path.cwd()))
        yield policy


@contextlib.contextmanager
def config_folder_trusted(folder: str | os.PathLike[str] | None) -> Iterator[None]:
    """Within the block, the policy ``trainlab train PATH`` gives the config at PATH (:func:`command_code_policy`),
    for a config from ``folder`` (``Path(PATH).parent``, :attr:`trainlab.config.Config.source_folder`): the
    working directory and ``folder`` are the user's (importable, appended to ``sys.path``); refusals still
    name the caller's opt-in. ``folder`` None (a config built in Python), or inside a policy that trusts no
    folder (``local=False``: a run folder's config, eval/resume): the policy in force is kept."""
    with contextlib.ExitStack() as stack:
        if folder is not None and _POLICY.get().local:
            stack.enter_context(allow_local_modules(Path.cwd()))
            stack.enter_context(allow_local_modules(folder))
        yield


def own_folder_policy(folder: str | os.PathLike[str], others: Iterable[str | os.PathLike[str]]) -> CodePolicy:
    """The policy in force, for the one config in ``folder`` among several (compare's bases): ``folder``
    trusted, the other configs' folders ``others`` not, as ``trainlab train`` of that config alone trusts.
    Its modules must already be importable (:func:`allow_local_modules` around the whole command)."""
    own = Path(folder).resolve()
    drop = {Path(other).resolve() for other in others} - {own}
    now = _POLICY.get()
    kept = tuple(path for path in now.folders if path not in drop)
    return replace(now, folders=kept if own in kept else (*kept, own))


@contextlib.contextmanager
def using_policy(policy: CodePolicy) -> Iterator[CodePolicy]:
    """Within the block, ``policy`` (one of :func:`own_folder_policy`) is the code policy."""
    token = _POLICY.set(policy)
    try:
        yield policy
    finally:
        _POLICY.reset(token)


def code_search_folders(policy: CodePolicy | None = None) -> list[Path]:
    """The folders whose modules are the user's under ``policy`` (the one in force by default), in the
    order a module name is looked for in them: the working directory (unless ``local=False``), then the
    policy's folders in the order they were added (the config's folder, a run's recorded folders)."""
    policy = policy or _POLICY.get()
    own = [Path.cwd().resolve()] if policy.local else []
    return list(dict.fromkeys([*own, *policy.folders]))


def trusted_code_folders() -> list[str]:
    """The folders whose modules count as the user's own now (the working directory first): what a run
    records in run.json (``code_folders``) so that its ``module:attr`` code is found from anywhere later."""
    policy = current_policy()
    if not policy.local:
        return []
    return list(dict.fromkeys(str(folder) for folder in (Path.cwd().resolve(), *policy.folders)))


_TRUSTED_RUNS: contextvars.ContextVar[Mapping[Path, CodePolicy]] = contextvars.ContextVar(
    "trainlab_trusted_runs", default={})  # noqa: B039 -- never mutated, only replaced: run folder -> its policy


def code_references(tree: Any) -> set[str]:
    """Every string in a config tree (dicts, lists) that could be a ``module:attr`` reference: every one
    holding a ``:`` (what :func:`import_reference` itself splits on; a path or URL among them only makes
    a comparison of two trees stricter)."""
    if isinstance(tree, Mapping):
        return set().union(*(code_references(value) for value in tree.values()))
    if isinstance(tree, list):
        return set().union(*(code_references(value) for value in tree))
    return {tree} if isinstance(tree, str) and ":" in tree else set()


@contextlib.contextmanager
def trusting_runs(folders: Iterable[str | os.PathLike[str]], policy: CodePolicy | None = None) -> Iterator[None]:
    """Within the block, the configs of the run folders ``folders`` are read under ``policy`` (default: the
    current one), as the user's own config is: ``compare`` trusts the runs it just planned from the user's
    configs (whose config.yaml names no code those configs do not), so their report rebuilds a
    ``module:attr`` model without ``--allow-code``, from the folder its own config trusted."""
    policy = policy or _POLICY.get()
    token = _TRUSTED_RUNS.set({**_TRUSTED_RUNS.get(), **{Path(folder).resolve(): policy for folder in folders}})
    try:
        yield
    finally:
        _TRUSTED_RUNS.reset(token)


def is_own_run(folder: str | os.PathLike[str], raw: Mapping[str, Any]) -> bool:
    """Whether the run folder's config.yaml names no ``module:attr`` code beyond what ``raw`` (the user's
    config of that run) names; False when it cannot be read."""
    from trainlab.errors import TrainlabError
    from trainlab.yaml_files import load_yaml_file

    try:
        stored = load_yaml_file(Path(folder) / "config.yaml", follow_links=False)
    except (TrainlabError, OSError, ValueError):
        return False
    return code_references(stored) <= code_references(raw)


@contextlib.contextmanager
def trusting_own_run(folder: str | os.PathLike[str], raw: Mapping[str, Any]) -> Iterator[None]:
    """Within the block, the run in ``folder`` is read under the policy in force (:func:`trusting_runs`)
    when it is the user's own run of ``raw`` (:func:`is_own_run`); else as anyone's run folder."""
    with trusting_runs([folder]) if is_own_run(folder, raw) else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def run_code_policy(run_dir: str | os.PathLike[str]) -> Iterator[CodePolicy]:
    """The policy for a run folder's config (eval, resume, ``load_run``): it trusts no folder. With the
    opt-in (``--allow-code``), the folders the run was trained from (``code_folders`` in its run.json) are
    importable, after everything installed, so its ``module:attr`` code is found from any directory.
    A folder of :func:`trusting_runs` is read under the policy it was trusted with."""
    trusted = _TRUSTED_RUNS.get().get(Path(run_dir).resolve())
    if trusted is not None:
        with using_policy(trusted):
            yield current_policy()
        return
    with contextlib.ExitStack() as stack:
        policy = stack.enter_context(code_policy(local=False))
        if current_policy().allow:
            for folder in recorded_code_folders(run_dir):
                stack.enter_context(allow_local_modules(folder))
            gone = tuple(recorded_code_folders(run_dir, existing=False))
            if gone:
                policy = stack.enter_context(using_policy(replace(_POLICY.get(), gone=gone)))
        yield policy


def recorded_code_folders(run_dir: str | os.PathLike[str], existing: bool = True) -> list[str]:
    """The folders a run was trained from (``code_folders`` in its run.json: the working directory, then the
    config's folder), those that still exist (``existing=False``: those that no longer do), in the order its
    modules were looked for in them; ``[]`` for a run.json that cannot be read or records none."""
    try:
        from trainlab.records import read_record_text  # records imports metrics: not at import

        folders = json.loads(read_record_text(Path(run_dir) / "run.json")).get("code_folders", [])
    except (OSError, ValueError, RecursionError, AttributeError):
        return []
    return [str(folder) for folder in folders if isinstance(folder, str) and Path(folder).is_dir() == existing] \
        if isinstance(folders, list) else []


def outside_code_references(tree: Any) -> set[str]:
    """The ``module:attr`` references of a config tree that import code other than trainlab's: the strings of
    :func:`code_references` shaped as a reference (dotted Python names either side of one ``:``, so that a
    path or URL holding a ``:`` is none) whose top-level module is not ``trainlab``. A run folder's config
    naming any of them imports it only with the opt-in, even a module of the user's own (:func:`run_code_policy`).
    A plain string of that shape elsewhere (a run ``name: exp:v2``) counts too: it only adds the opt-in to a
    hint, where it is not needed but still works."""
    def dotted(name: str) -> bool:
        return bool(name) and all(part.isidentifier() for part in name.split("."))

    found: set[str] = set()
    for text in code_references(tree):
        module, _, attribute = text.partition(":")
        if dotted(module) and dotted(attribute) and module.split(".")[0] != "trainlab":
            found.add(text)
    return found


def run_needs_code_opt_in(run_dir: str | os.PathLike[str]) -> bool:
    """Whether the run folder's config.yaml names code that ``trainlab resume``/``eval`` of it import only with
    the opt-in (:func:`outside_code_references`: the user's own modules too); False when it cannot be read
    (then the command's own refusal says what is wrong)."""
    from trainlab.errors import TrainlabError
    from trainlab.yaml_files import load_yaml_file

    try:
        stored = load_yaml_file(Path(run_dir) / "config.yaml", follow_links=False)
    except (TrainlabError, OSError, ValueError, RecursionError):
        return False
    return bool(outside_code_references(stored))


def resume_command_words(run_dir: str | os.PathLike[str]) -> list[str]:
    """The words of the command that continues the run in ``run_dir``, for a message's hint (joined by
    :func:`trainlab.shell_command.command_line` or ``quoted_command``): ``trainlab resume DIR``, or
    ``trainlab --allow-code resume DIR`` where the run's config names ``module:attr`` code
    (:func:`run_needs_code_opt_in`), which a run folder's config imports only with the opt-in; with it, from
    the folders the run recorded (:func:`recorded_code_folders`), so the command works from any directory."""
    return run_command_words("resume", run_dir)


def run_command_words(command: str, run_dir: str | os.PathLike[str], *rest: str) -> list[str]:
    """``trainlab [--allow-code] COMMAND RUN_DIR REST...`` for a hint naming a command on a run folder (resume,
    eval, predict): the opt-in where the run's config names ``module:attr`` code (:func:`run_needs_code_opt_in`)."""
    opt_in = ["--allow-code"] if run_needs_code_opt_in(run_dir) else []
    return ["trainlab", *opt_in, command, os.fspath(run_dir), *rest]
