"""Name -> factory registries for every pluggable component.

A registry maps a lower-case name to a factory (a class or function). ``build``
accepts a name, a ``{"name": ..., **kwargs}`` mapping, or an already-built
instance (Keras ``optimizers.get``). A user component is referenced as
``package.module:attribute`` and follows the same contract as a built-in.
Unknown names raise :class:`ConfigError` listing the valid choices, with a
did-you-mean suggestion.

Code policy (what a ``module:attr`` reference may import and call)
-----------------------------------------------------------------
A reference runs code, so :func:`import_reference` decides *before importing*:

- the user's own modules, i.e. modules whose file lies in a *local folder*
  (the working directory and folders added with :func:`allow_local_modules`,
  e.g. the config's folder) and not in the standard library or site-packages,
  are allowed;
- trainlab's own modules are allowed only for a target that is a registered
  factory of some registry (the same thing a plain name reaches);
- everything else (the standard library, installed third-party packages, code
  anywhere else) is refused with one line unless code is allowed: the CLI's
  ``--allow-code`` flag, ``TRAINLAB_ALLOW_CODE=1``, or ``code_policy(allow=True)``; the refusal names
  the opt-in of its caller (``--allow-code`` under a CLI command, ``code_policy(allow=True)`` from Python);
- ``code_policy(local=False)`` trusts no folder: the mode for a config read
  from a run folder (``eval``/``resume``), which may come from someone else.

Whatever the policy, the target must have a factory's shape: a class or a
Python function (not a module, not a builtin like ``os.system``), reached
through public attributes only.

Which file a module name means
------------------------------
A module of the user's comes from the folders trusted *now* (:func:`code_search_folders`: the working
directory, then the config's folder, in that order), whatever ``sys.modules`` or ``sys.path`` hold from
an earlier config: ``load_run(A)`` then ``load_run(B)``, or a comparison of ``extA/base.yaml`` and
``extB/base.yaml``, each beside its own ``mymodels.py``. When the module of that name already imported,
or the one ``sys.path`` finds first, is another file, the trusted one is imported under its own name
(:func:`_import_own`: ``mymodels__trainlab_<hash of its path>``), so both live side by side; an installed
package of that name still wins, as ``sys.path`` order makes it.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import json
import os
import site
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from trainlab.config_fields import short_repr
from trainlab.errors import ConfigError
from trainlab.option_types import mismatch, numbers_read

T = TypeVar("T", bound=Callable[..., Any])
ALLOW_CODE_ENV = "TRAINLAB_ALLOW_CODE"


def did_you_mean(name: str, choices: list[str]) -> str:
    """Return ``"; did you mean 'x'?"`` for the closest choice, or ``""``: difflib's closest (similarity
    0.6 or more), else the one choice ``name`` abbreviates (:func:`_abbreviated`)."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6) or _abbreviated(name, choices)
    return f"; did you mean '{close[0]}'?" if close else ""


def _abbreviated(name: str, choices: list[str]) -> list[str]:
    """The one choice ``name`` (3 letters or more) begins, or whose ``_``-separated words it abbreviates in
    order (``bal_acc``: ``balanced_accuracy``); none when several do. difflib misses these: 'acc' is 0.55
    similar to 'accuracy' (the cut-off is 0.6)."""
    if len(name) < 3:
        return []
    words = name.split("_")
    found = [choice for choice in choices if choice.startswith(name) or (
        len(words) == len(choice.split("_")) and all(c.startswith(w) for w, c in zip(words, choice.split("_"), strict=True)))]
    return found if len(found) == 1 else []


# --------------------------------------------------------------------------- code policy

@dataclass(frozen=True)
class CodePolicy:
    """What ``module:attr`` references may reach (see the module docstring)."""

    allow: bool | None = None  # True: --allow-code, any importable module; None: TRAINLAB_ALLOW_CODE decides;
    # False: refused whatever the environment says (load_run(..., allow_code=False))
    local: bool = True  # False: no folder counts as the user's own (config from a run folder)
    folders: tuple[Path, ...] = field(default=())  # local folders besides the working directory
    cli: bool = False  # set by a CLI command (command_code_policy): a refusal names --allow-code, else the Python opt-in


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
    ``allow``, the working directory is importable). Its refusals name ``--allow-code`` (``cli``)."""
    configs = [] if config is None else [config] if isinstance(config, str | os.PathLike) else list(config)
    with contextlib.ExitStack() as stack:
        policy = stack.enter_context(code_policy(allow=allow or None, local=False if run_dir is not None else None,
                                                 cli=True))
        if run_dir is None:
            stack.enter_context(allow_local_modules(Path.cwd()))
            for folder in dict.fromkeys(Path(path).parent.resolve() for path in configs):
                stack.enter_context(allow_local_modules(folder))
        elif allow:
            stack.enter_context(allow_local_modules(Path.cwd()))
        yield policy


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
            for folder in _recorded_code_folders(Path(run_dir)):
                stack.enter_context(allow_local_modules(folder))
        yield policy


def _recorded_code_folders(run_dir: Path) -> list[str]:
    try:
        from trainlab.records import read_record_text  # records imports metrics: not at registry's import

        folders = json.loads(read_record_text(run_dir / "run.json")).get("code_folders", [])
    except (OSError, ValueError, RecursionError, AttributeError):
        return []
    return [str(folder) for folder in folders if isinstance(folder, str) and Path(folder).is_dir()] \
        if isinstance(folders, list) else []


@functools.cache
def _installed_roots() -> tuple[Path, ...]:
    """Folders holding the standard library and installed packages (fixed for the process: read once)."""
    roots = set()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        with contextlib.suppress(KeyError):
            roots.add(sysconfig.get_paths()[key])
    with contextlib.suppress(AttributeError):
        roots.update(site.getsitepackages())
    with contextlib.suppress(AttributeError):
        roots.add(site.getusersitepackages())
    return tuple(Path(r).resolve() for r in roots if r)


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _module_files(top: str) -> list[Path] | None:
    """Where the top-level module ``top`` would be imported from (not importing it); None: not a file."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    places = list(spec.submodule_search_locations or [])
    if spec.origin and spec.has_location:
        places.append(spec.origin)
    return [Path(p).resolve() for p in places] or None


def _is_installed(file: Path) -> bool:
    return (any(part in {"site-packages", "dist-packages"} for part in file.parts)
            or any(_inside(file, root) for root in _installed_roots()))


def _not_users(top: str) -> bool:
    """Names never looked for in the user's folders: the standard library's, the builtins', trainlab."""
    return top in sys.stdlib_module_names or top in sys.builtin_module_names or top == "trainlab"


# top-level name a module of the user's was imported under by _import_own -> the file or package folder it is
_OWN_IMPORTS: dict[str, Path] = {}


def _own_spec(top: str, policy: CodePolicy) -> importlib.machinery.ModuleSpec | None:
    """The module or package ``top`` in the first trusted folder holding one (:func:`code_search_folders`);
    None: in none of them (a namespace package, a folder without ``__init__.py``, keeps plain import)."""
    for folder in code_search_folders(policy):
        try:
            spec = importlib.machinery.PathFinder.find_spec(top, [str(folder)])
        except (ImportError, ValueError, OSError):
            continue
        if spec is not None and spec.origin and spec.has_location:
            return spec
    return None


def _location(spec: importlib.machinery.ModuleSpec) -> Path:
    """A regular module's file, or a package's folder."""
    origin = Path(spec.origin or "").resolve()
    return origin.parent if spec.submodule_search_locations is not None else origin


def _import_source(top: str, policy: CodePolicy) -> importlib.machinery.ModuleSpec | None:
    """The trusted spec ``top`` must be imported from under its own name (:func:`_import_own`), or None
    when a plain import gives the right module: the one of that name loaded (or first on ``sys.path``) is
    the trusted file itself, an installed package (which wins, as ``sys.path`` order makes it), or no
    trusted folder holds one."""
    if _not_users(top) or top in _OWN_IMPORTS:
        return None
    own = _own_spec(top, policy)
    if own is None:
        return None
    natural = _module_files(top)  # the loaded module's files, else sys.path's first match
    if natural is not None and (any(_is_installed(file) for file in natural) or _location(own) in natural
                                or Path(own.origin or "").resolve() in natural):
        return None
    return own


def _import_own(top: str, spec: importlib.machinery.ModuleSpec) -> Any:
    """Import the module or package of ``spec`` (in a trusted folder) as ``<top>__trainlab_<hash>``: a
    name of its own, so that another file's module ``top`` already in ``sys.modules`` is neither reused
    nor replaced. A package's relative imports and submodules work under that name; an absolute
    ``import other`` inside it is still ``sys.path``'s."""
    location = _location(spec)
    alias = f"{top}__trainlab_{hashlib.sha256(str(location).encode()).hexdigest()[:12]}"
    if alias in sys.modules:
        return sys.modules[alias]
    if not isinstance(spec.loader, importlib.machinery.SourceFileLoader | importlib.machinery.SourcelessFileLoader):
        loaded = ", ".join(str(f) for f in _module_files(top) or []) or "another file"
        raise ConfigError(f"module '{top}' is already imported from {loaded}, and {spec.origin} (in the folder "
                          f"trusted now) cannot be imported beside it under another name; rename one of them")
    own = importlib.util.spec_from_file_location(alias, spec.origin,
                                                 submodule_search_locations=spec.submodule_search_locations)
    if own is None or own.loader is None:
        raise ImportError(f"cannot load {spec.origin}")
    module = importlib.util.module_from_spec(own)
    sys.modules[alias] = module
    try:
        own.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(alias, None)
        raise
    _OWN_IMPORTS[alias] = location
    return module


def user_module_file(module_name: str) -> Path | None:
    """The file (a package: its folder) the user's module ``module_name`` comes from under the current
    policy; None when it is not the user's code (installed, the standard library, trainlab) or not found."""
    policy = current_policy()
    top = module_name.split(".")[0]
    if not all(part.isidentifier() for part in module_name.split(".")):  # a path or URL holding ':', say
        return None
    if _not_users(top) or not _is_users_code(top, policy):
        return None
    source = _import_source(top, policy)
    if source is not None:
        return _location(source)
    files = _module_files(top)  # a package: its folder first
    return files[0] if files else None


def _is_users_code(module_name: str, policy: CodePolicy, imported: bool = False) -> bool:
    """Whether ``module_name`` is the user's code: its top-level module lies in a trusted folder and not
    among the installed packages. Before importing (``imported`` False), the files the import will
    read (:func:`_import_source`); after, those of the module already imported under that name."""
    top = module_name.split(".")[0]
    if _not_users(top) or not policy.local:
        return False
    source = None if imported or top in _OWN_IMPORTS else _import_source(top, policy)
    files = ([_OWN_IMPORTS[top]] if top in _OWN_IMPORTS else [_location(source)] if source is not None
             else _module_files(top))
    if not files:
        return False
    local = code_search_folders(policy)
    return all(not _is_installed(file) and any(_inside(file, folder) for folder in local) for file in files)


_REGISTRIES: list[Registry[Any]] = []

# Keys a config section reads itself next to its factory's options, by registry kind: ``data.val_fraction``
# sits beside the csv source's ``delimiter``. The config module that defines the section declares them
# (:func:`declare_section_keys`), so that a typo of one gets the same did-you-mean as a typo of an option.
_SECTION_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {}


def declare_section_keys(kind: str, section: str, keys: Iterable[str]) -> None:
    """Every ``kind`` factory's section (e.g. ``data``) also takes ``keys``; unknown-option errors list them."""
    _SECTION_KEYS[kind] = (section, tuple(keys))


def _removal_hint(section: str, option: str) -> str:
    """How to drop the key ``section.option`` a factory does not take: in a CLI command (the code policy's
    ``cli``, :func:`command_code_policy`) with ``--set '~KEY'``, which deletes a key of the config file
    (:func:`trainlab.config.apply_overrides`); from Python, by editing the mapping."""
    if _POLICY.get().cli:
        return f"remove it with --set '~{section}.{option}'"
    return f"remove the key '{option}' from {section}"


def _is_registered(target: Any) -> bool:
    return any(target is factory for registry in _REGISTRIES for factory in registry._entries.values())


def _refuse_outside(reference: str, kind: str) -> ConfigError:
    """The refusal of ``reference``, naming the opt-in its caller has: the CLI's ``--allow-code``; from
    Python (trainlab.fit, load_run), ``load_run(..., allow_code=True)`` for a run folder's config and
    :func:`code_policy` for the caller's own; :data:`ALLOW_CODE_ENV` either way."""
    policy = current_policy()
    within = "'with trainlab.registry.code_policy(allow=True):' around the call runs it"
    if not policy.local:  # a run folder's config: it may come from someone else
        opt_in = ("pass --allow-code to run it" if policy.cli else
                  f"from Python, load_run(..., allow_code=True) or {within}")
        return ConfigError(f"config references '{reference}', which is outside your own code: a run folder's "
                           f"config imports no code without the opt-in; {opt_in} (or set {ALLOW_CODE_ENV}=1)")
    opt_in = "pass --allow-code to run it" if policy.cli else f"from Python, {within}"
    return ConfigError(f"config references '{reference}', which is outside your own code; {opt_in} "
                       f"(or set {ALLOW_CODE_ENV}=1)")


def import_reference(reference: str, kind: str) -> Any:
    """Import ``package.module:attribute`` under the current :class:`CodePolicy`; the only way to user code.

    Refuses (ConfigError, before importing anything) a module outside the policy, then a target reached
    through a private attribute or a module, or one that is not a class or a Python function.
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ConfigError(f"{kind} reference '{reference}' must look like 'package.module:attribute'")
    parts = attribute.split(".")
    if any(not part or part.startswith("_") for part in module_name.split(".") + parts):
        raise ConfigError(f"{kind} reference '{reference}' names a private attribute; "
                          "reference a public class or function")
    policy = current_policy()
    trainlab_code = module_name.split(".")[0] == "trainlab"
    if not (policy.allow or trainlab_code or _is_users_code(module_name, policy)):
        top = module_name.split(".")[0]
        if policy.local and top not in sys.stdlib_module_names and _module_files(top) is None:
            raise ConfigError(f"cannot import module '{module_name}' for {kind} '{reference}': no module "
                              f"'{top}' in the config's folder, the working directory or installed packages")
        raise _refuse_outside(reference, kind)
    top, dot, rest = module_name.partition(".")
    try:
        source = _import_source(top, policy)  # another file's module of that name is loaded: this one beside it
        if source is None:
            module = importlib.import_module(module_name)
        else:
            package = _import_own(top, source)
            module = importlib.import_module(f"{package.__name__}{dot}{rest}") if rest else package
    except ConfigError:
        raise
    except Exception as exc:  # any import failure is the user's module, report it in one line
        raise ConfigError(
            f"cannot import module '{module_name}' for {kind} '{reference}': {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in parts:
        if not hasattr(target, part):
            raise ConfigError(f"module '{module_name}' has no attribute '{attribute}' (from {kind} '{reference}')")
        target = getattr(target, part)
        if inspect.ismodule(target):
            raise ConfigError(f"{kind} reference '{reference}' reaches the module '{target.__name__}' "
                              f"through '{module_name}'; reference a class or function defined in your module")
    if not (inspect.isclass(target) or inspect.isfunction(target) or inspect.ismethod(target)):
        raise ConfigError(f"{kind} reference '{reference}' is a {type(target).__name__}, not a class or "
                          "function (a factory following the component's contract)")
    if not policy.allow:
        defined_in = getattr(target, "__module__", None) or ""
        if trainlab_code and not _is_registered(target):
            raise _refuse_outside(reference, kind)
        if not trainlab_code and not _is_users_code(defined_in, policy, imported=True):
            raise _refuse_outside(reference, kind)  # e.g. 'mymodule:rmtree' after 'from shutil import rmtree'
    return target


class Registry(Generic[T]):
    """A named table of factories of one kind (losses, optimizers, ...)."""

    def __init__(self, kind: str, check: Callable[[str, dict[str, Any]], None] | None = None):
        """``check(name, options)``, when given, raises ConfigError for option values the annotations allow
        but no factory of this kind can use (an optimizer's momentum of 1.5)."""
        self.kind = kind
        self.check = check
        self._entries: dict[str, T] = {}
        _REGISTRIES.append(self)

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@LOSSES.register("mse")``."""

        def add(factory: T) -> T:
            key = name.lower()
            if key in self._entries:
                raise ValueError(f"{self.kind} '{key}' is already registered")
            self._entries[key] = factory
            return factory

        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def defaults(self, name: str) -> dict[str, Any]:
        """The keyword defaults of the factory registered as ``name``, read from its signature (nothing is
        built); ``{}`` for a name not registered here (a ``module:attr`` reference is not imported) or a
        factory whose signature cannot be read."""
        if name not in self:
            return {}
        try:
            parameters = inspect.signature(self._entries[name.lower()]).parameters.values()
        except (TypeError, ValueError):
            return {}
        return {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}

    def get(self, name: str) -> T:
        """The factory for ``name`` (or a ``module:attr`` reference)."""
        if ":" in name:
            return import_reference(name, self.kind)
        key = name.lower()
        if key not in self._entries:
            valid = ", ".join(self.names())
            raise ConfigError(
                f"unknown {self.kind} '{name}'{did_you_mean(key, self.names())} (valid: {valid})"
            )
        return self._entries[key]

    def build(self, spec: str | Mapping[str, Any] | Any, *args: Any, **extra: Any) -> Any:
        """Build from a name, a ``{"name": ..., **kwargs}`` mapping, or pass an instance through."""
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping):
            kwargs = dict(spec)
            name = kwargs.pop("name", None)
            if not isinstance(name, str):
                raise ConfigError(f"{self.kind} needs a 'name' (valid: {', '.join(self.names())})")
        else:
            return spec
        factory = self.get(name)
        self._check_options(name, factory, kwargs, skip=len(args))
        self._check_required(name, factory, {**extra, **kwargs}, skip=len(args))
        self._check_types(name, factory, kwargs)
        kwargs = numbers_read(factory, kwargs)  # '1e-4' (YAML 1.1 text) -> 0.0001 where a number is taken
        if self.check is not None:
            self.check(name, kwargs)
        try:
            return factory(*args, **extra, **kwargs)
        except (ValueError, TypeError) as exc:  # a constructor rejecting a value: the config's fault
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(f"{self.kind} '{name}': {first}") from exc

    def takes_option(self, name: str, option: str, skip: int = 0) -> bool:
        """Whether ``name``'s factory takes the keyword ``option`` (:meth:`check_options` would pass it)."""
        try:
            self.check_options(name, {option: None}, skip)
        except ConfigError:
            return False
        return True

    def check_options(self, name: str, options: Mapping[str, Any], skip: int = 0) -> None:
        """The one-line ConfigError :meth:`build` gives for an option ``name``'s factory does not take
        (``skip``: the positional arguments the caller supplies), without building anything."""
        self._check_options(name, self.get(name), dict(options), skip)

    def check_types(self, name: str, options: Mapping[str, Any]) -> None:
        """The one-line ConfigError :meth:`build` gives for an option value of the wrong type (the factory's
        annotations, :func:`trainlab.option_types.mismatch`), without building anything."""
        self._check_types(name, self.get(name), dict(options))

    def _check_types(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        wrong = mismatch(factory, kwargs)
        if wrong is not None:
            option, expected = wrong
            note = getattr(factory, "option_notes", {}).get(option)  # a factory's hint for this option
            raise ConfigError(f"{self.kind} '{name}': option '{option}' must be {expected}; "
                              f"got {short_repr(kwargs[option])}{f' ({note})' if note else ''}")

    def _check_required(self, name: str, factory: Callable[..., Any], given: dict[str, Any], skip: int) -> None:
        """A required option the config left out -> one line naming it (not Python's "missing 1 required
        positional argument"); a data source's is a ``data.`` key."""
        try:
            parameters = list(inspect.signature(factory).parameters.values())[skip:]
        except (TypeError, ValueError):
            return
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        missing = [p.name for p in parameters
                   if p.kind in kinds and p.default is inspect.Parameter.empty and p.name not in given]
        if missing:
            section = _SECTION_KEYS.get(self.kind, ("", ()))[0]
            keys = ", ".join(f"{section}.{option}" if section else f"'{option}'" for option in missing)
            raise ConfigError(f"{self.kind} '{name}' needs {keys} (not set)")

    def _check_options(self, name: str, factory: Callable[..., Any], kwargs: dict[str, Any], skip: int) -> None:
        """Unknown keyword options -> one line naming the option, a did-you-mean and the valid ones.

        The options are the factory's parameters after the ``skip`` positional arguments the caller supplies,
        including those it passes by keyword from the same config section (the optimizer's ``lr``), then
        the section's own keys (:func:`declare_section_keys`).
        """
        try:
            signature = inspect.signature(factory)
        except (TypeError, ValueError):
            return
        parameters = list(signature.parameters.values())
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return
        options = [p.name for p in parameters[skip:] if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        section, shared = _SECTION_KEYS.get(self.kind, ("", ()))
        shared = [key for key in shared if key not in options]
        for option in kwargs:
            if option not in options:
                listed = f"options: {', '.join(options) or 'none'}"
                if shared:
                    listed += f"; shared {section} keys: {', '.join(shared)}"
                suggestion = did_you_mean(option, options + shared)
                # no close name: likely a key left from another source (--set data.source=...), so say how to drop it
                removal = f"; {_removal_hint(section, option)}" if section and not suggestion else ""
                raise ConfigError(f"{self.kind} '{name}' has no option '{option}'{suggestion} ({listed}){removal}")
