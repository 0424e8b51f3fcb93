"""Importing the user's own code: ``package.module:attribute`` references, under the code policy.

:func:`import_reference` is the only way a config reaches code that is not a registered name. It refuses
(one-line :class:`ConfigError`, before importing anything) what the :class:`~trainlab.code_policy.CodePolicy`
in force does not allow (the rules: :mod:`trainlab.code_policy`), then a target that is not a class or a
Python function reached through public attributes. :func:`user_module_file` says which file such a module
comes from, without importing it.

Which file a module name means
------------------------------
A module of the user's comes from the folders trusted *now* (:func:`~trainlab.code_policy.code_search_folders`:
the working directory, then the config's folder when the config was read from a file, in that order), whatever ``sys.modules`` or ``sys.path`` hold
from an earlier config: ``load_run(A)`` then ``load_run(B)``, or a comparison of ``extA/base.yaml`` and
``extB/base.yaml``, each beside its own ``mymodels.py``. When the module of that name already imported,
or the one ``sys.path`` finds first, is another file, the trusted one is imported under its own name
(:func:`_import_own`: ``mymodels__trainlab_<hash of its path>``), so both live side by side; an installed
package of that name still wins, as ``sys.path`` order makes it, and the error a reference to such a file
ends in says so (:func:`_shadowed_by`).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import site
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from trainlab.code_policy import ALLOW_CODE_ENV, CodePolicy, code_search_folders, current_policy
from trainlab.errors import ConfigError


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


def _own_spec_and_folder(top: str, policy: CodePolicy) -> tuple[importlib.machinery.ModuleSpec, Path] | None:
    """The module or package ``top`` in the first trusted folder holding one (:func:`code_search_folders`),
    and that folder; None: in none of them (a namespace package, a folder without ``__init__.py``, keeps
    plain import)."""
    for folder in code_search_folders(policy):
        try:
            spec = importlib.machinery.PathFinder.find_spec(top, [str(folder)])
        except (ImportError, ValueError, OSError):
            continue
        if spec is not None and spec.origin and spec.has_location:
            return spec, folder
    return None


def _own_spec(top: str, policy: CodePolicy) -> importlib.machinery.ModuleSpec | None:
    """The spec of :func:`_own_spec_and_folder`."""
    found = _own_spec_and_folder(top, policy)
    return None if found is None else found[0]


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

# The factory tables (name -> factory) of every Registry, each added by the Registry that fills it
# (:func:`admit_factories`): trainlab's own code is reachable by reference only as one of their factories.
_FACTORY_TABLES: list[Mapping[str, Any]] = []


def admit_factories(table: Mapping[str, Any]) -> None:
    """Let a ``trainlab...:attr`` reference reach the factories of ``table`` (a
    :class:`~trainlab.registry.Registry`'s, read as it fills): the same things its plain names reach."""
    _FACTORY_TABLES.append(table)


def _is_registered(target: Any) -> bool:
    return any(target is factory for table in _FACTORY_TABLES for factory in table.values())


def _refuse_outside(reference: str, kind: str) -> ConfigError:
    """The refusal of ``reference``, naming the opt-in its caller has: the CLI's ``--allow-code``; from
    Python (trainlab.fit, load_run), ``load_run(..., allow_code=True)`` for a run folder's config and
    :func:`code_policy` for the caller's own; :data:`ALLOW_CODE_ENV` either way."""
    policy = current_policy()
    within = "'with trainlab.code_policy.code_policy(allow=True):' around the call runs it"
    if not policy.local:  # a run folder's config: it may come from someone else
        opt_in = ("pass --allow-code to run it" if policy.cli else
                  f"from Python, load_run(..., allow_code=True) or {within}")
        return ConfigError(f"config references '{reference}', but a run folder's config imports no code without "
                           f"the opt-in, not even your own modules (the folder may come from someone else); {opt_in} "
                           f"(or set {ALLOW_CODE_ENV}=1)")
    opt_in = "pass --allow-code to run it" if policy.cli else f"from Python, {within}"
    return ConfigError(f"config references '{reference}', which is outside your own code; {opt_in} "
                       f"(or set {ALLOW_CODE_ENV}=1)")


def _where_looked(policy: CodePolicy) -> str:
    """Where a module of the user's was looked for under ``policy``, for the "no module" line: the folders
    of :func:`code_search_folders` by name (the working directory marked so) and the installed packages.
    Without a config file's folder trusted (a config built in Python, ``trainlab.fit`` of a strategy dict),
    it says that no config file's folder was searched, and how one is."""
    cwd = Path.cwd().resolve()
    folders = [f"{folder} (the working directory)" if folder == cwd else str(folder)
               for folder in code_search_folders(policy)]
    where = f"in {', '.join(folders)} or the installed packages"
    if policy.cli or policy.folders:  # a config file's folder is trusted (the working directory, when it is there)
        return where
    return (f"{where}; no config file's folder was searched (a config built in Python has none; train(PATH), "
            "fit(..., strategy=PATH) and train(load_config(PATH)) search PATH's folder too)")


def _shown(location: Path, folder: Path) -> str:
    """``clash/transformers.py next to the config``: the user's module file (a package: its folder) as the
    user names it, relative to the working directory where it lies below it."""
    cwd = Path.cwd().resolve()
    if folder == cwd:
        return f"{location.name}{'/' if location.is_dir() else ''} in the working directory"
    with contextlib.suppress(ValueError):
        location = location.relative_to(cwd)
    return f"{location}{'/' if location.is_dir() else ''} next to the config"


def _shadowed_by(top: str, policy: CodePolicy) -> str | None:
    """When a trusted folder (:func:`code_search_folders`) holds a module or package ``top`` of the user's
    but the name imports an installed package, a standard-library or a built-in module instead (those come
    first on ``sys.path``), what module ``top`` is: ``"the installed package (/.../transformers), not
    clash/transformers.py next to the config: an installed package of the same name wins; rename your file"``;
    else None."""
    found = None if top == "trainlab" or not policy.local else _own_spec_and_folder(top, policy)
    if found is None:
        return None
    own, folder = found
    if top in sys.builtin_module_names:
        kind, winner = "the built-in module", "a built-in module"
    else:
        files = _module_files(top)
        if not files or _location(own) in files or not any(_is_installed(file) for file in files):
            return None  # the user's own file is what imports (or another folder's: _import_own's business)
        standard = top in sys.stdlib_module_names
        owner = "the standard library's module" if standard else "the installed package"
        kind = f"{owner} ({files[0]})"
        winner = "a standard-library module" if standard else "an installed package"
    rename = "package folder" if own.submodule_search_locations is not None else "file"
    return f"{kind}, not {_shown(_location(own), folder)}: {winner} of the same name wins; rename your {rename}"


def _objects_in_fit(kind: str) -> str:
    """What ``trainlab.fit`` takes in place of a ``module:attr`` reference of ``kind``, for the end of the
    message refusing a ``__main__:...`` reference: fit builds each strategy component itself (no object),
    takes metrics by name only, and the model as an instance."""
    if kind == "model":
        return " (trainlab.fit takes your model as an nn.Module instance instead: fit(MyNet(...), ...))"
    if kind == "metric":
        return " (trainlab.fit's metrics take no function object either)"
    if kind in ("loss", "optimizer", "schedule", "initializer"):
        return f" (trainlab.fit takes no class or function object in its place either: it builds the {kind} itself)"
    return ""


def _loaded_target(module_name: str, parts: list[str]) -> Any:
    """The target of ``module_name:attribute`` when that module is an installed one (the standard library's,
    a package's: ``torch.nn``) already imported, read from the module's own namespace: nothing is imported
    and nothing runs (no module ``__getattr__``). None otherwise: a dotted attribute (through a class, or a
    module, which :func:`import_reference` refuses), a module not imported, or one of the user's (which
    module of that name is meant depends on the folders trusted)."""
    top = module_name.split(".")[0]
    files = _module_files(top)
    module = sys.modules.get(module_name)
    if len(parts) != 1 or not inspect.ismodule(module) or \
            (top not in sys.stdlib_module_names and not (files and all(_is_installed(file) for file in files))):
        return None
    return vars(module).get(parts[0])


def _misfit(reference: str, kind: str, target: Any) -> ConfigError | None:
    """The refusal of a ``kind`` that ``target`` can never be, whatever the code policy allows, so that it
    comes first, not an opt-in that cannot help: a torch.nn loss (``torch.nn:MSELoss``, a module of the user's
    holding ``MSE = torch.nn.MSELoss``) for a loss (:func:`trainlab.losses.base.not_a_loss_module`). A type
    check: nothing of ``target`` runs. None for any other kind or target."""
    if kind != "loss" or target is None:
        return None
    # imported here: the losses import the registry, which imports this module
    from trainlab.losses.base import not_a_loss_module

    message = not_a_loss_module(reference, target)
    return None if message is None else ConfigError(message)


def _close_module(top: str, policy: CodePolicy) -> str | None:
    """The module (``*.py``) or package of the folders searched for the user's code (:func:`code_search_folders`)
    whose name is closest to ``top``, a module found nowhere; None where none is close."""
    from trainlab.registry import closest_choice

    names: set[str] = set()
    for folder in code_search_folders(policy):
        with contextlib.suppress(OSError):
            names |= {path.stem for path in Path(folder).iterdir()
                      if path.suffix == ".py" or (path.is_dir() and (path / "__init__.py").is_file())}
    return closest_choice(top, sorted(name for name in names if name.isidentifier()))


def _defines(module: str, attribute: str, policy: CodePolicy) -> bool:
    """Whether the source of module ``module`` (a ``.py`` file or a package's ``__init__.py`` in the folders
    searched) defines or imports the name ``attribute``, read as text (nothing is imported)."""
    pattern = re.compile(rf"^\s*(?:def|class)\s+{re.escape(attribute)}\b|^{re.escape(attribute)}\s*[:=]|"
                         rf"\bimport\b[^\n]*\b{re.escape(attribute)}\b", re.MULTILINE)
    for folder in code_search_folders(policy):
        for file in (Path(folder) / f"{module}.py", Path(folder) / module / "__init__.py"):
            with contextlib.suppress(OSError, UnicodeDecodeError):
                if pattern.search(file.read_text(encoding="utf-8")):
                    return True
    return False


def _module_hint(top: str, policy: CodePolicy, attribute: str = "") -> str:
    """``"; did you mean 'mymodels'?"`` for a module ``top`` found nowhere (:func:`_close_module`); else ``""``.
    A run folder's config (``policy.local`` False) cannot be edited, its hash being checked: there the hint is
    to give the module its old name back, or a module of that name that re-exports the renamed one, and it is
    given only where the close module defines the reference's ``attribute`` (:func:`_defines`): a close name
    alone (``mymodels`` for a deleted ``mylosses``) is no sign of a rename, and the re-export would not help."""
    close = _close_module(top, policy)
    if close is None:
        return ""
    if not policy.local:
        if attribute and not _defines(close, attribute, policy):
            return ""
        return (f"; did you rename it to '{close}'? A run's config.yaml cannot be edited (its hash is checked): give "
                f"the module its name back, or add a {top}.py beside it holding 'from {close} import *'")
    return f"; did you mean '{close}'?"


def _import_failure(exc: Exception, module_name: str, kind: str, reference: str, policy: CodePolicy) -> ConfigError:
    """The one line for ``module_name`` failing to import with ``exc``: its own error; for a module found nowhere,
    where it was looked for (and the close name of a module there), as without the opt-in; for a run whose code
    folders were moved or deleted since it trained (``policy.gone``), also which folders are gone, and where to
    run from."""
    top = module_name.partition(".")[0]
    if not (isinstance(exc, ModuleNotFoundError) and exc.name == top):
        return ConfigError(f"cannot import module '{module_name}' for {kind} '{reference}': {type(exc).__name__}: {exc}")
    if not policy.gone:  # the opt-in imports what the search folders hold: say where it looked, as without it
        return ConfigError(_not_found(module_name, kind, reference, policy))
    several = len(policy.gone) > 1
    return ConfigError(f"{_not_found(module_name, kind, reference, policy, hint=False)}; the run was trained with it "
                       f"from {', '.join(policy.gone)}, which no longer exist{'' if several else 's'}: run from the "
                       f"folder that holds {top}.py (or the package {top}/) now, or put that folder on PYTHONPATH")


def _not_found(module_name: str, kind: str, reference: str, policy: CodePolicy, hint: bool = True) -> str:
    """The refusal's words for ``module_name``, found in none of the folders searched nor the installed packages: where it
    was looked for (:func:`_where_looked`) and, with ``hint``, the close name of a module there."""
    top = module_name.partition(".")[0]
    attribute = reference.partition(":")[2].partition(".")[0]
    return (f"cannot import module '{module_name}' for {kind} '{reference}': no module '{top}' "
            f"{_where_looked(policy)}{_module_hint(top, policy, attribute) if hint else ''}")


def _no_attribute(target: Any, part: str, module_name: str, attribute: str, source: str,
                  policy: CodePolicy) -> ConfigError:
    """The refusal of ``module_name:attribute`` whose ``part`` ``target`` lacks (``source``: the reference, as
    ``model 'mymodels:make_nett'``): the module that imported instead of the user's where one did
    (:func:`_shadowed_by`), else the close public name of ``target`` (``make_net``)."""
    from trainlab.registry import did_you_mean  # the registry imports this module

    top = module_name.partition(".")[0]
    shadowed = _shadowed_by(top, policy)
    which = "it" if module_name == top else f"'{top}'"
    why = f": {which} is {shadowed}" if shadowed else \
        did_you_mean(part, [name for name in dir(target) if not name.startswith("_")])
    return ConfigError(f"module '{module_name}' has no attribute '{attribute}' (from {source}){why}")


def import_reference(reference: str, kind: str) -> Any:
    """Import ``package.module:attribute`` under the current :class:`CodePolicy`; the only way to user code.

    Refuses (ConfigError, before importing anything) a module outside the policy, then a target reached
    through a private attribute or a module, or one that is not a class or a Python function. A target that
    can never be a ``kind`` (:func:`_misfit`: a torch.nn loss for a loss) is refused in its own words first,
    before the opt-in is asked for: read after importing a module of the user's, or, for an installed module
    already imported (``torch.nn``), from its namespace without importing (:func:`_loaded_target`).
    """
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute or ":" in attribute:
        raise ConfigError(f"{kind} reference '{reference}' must look like 'package.module:attribute'")
    parts = attribute.split(".")
    if module_name.split(".")[0] == "__main__":
        module = f"my_{kind.replace(' ', '_')}"
        raise ConfigError(f"{kind} reference '{reference}' names the __main__ module (the script run as a program), "
                          f"which cannot be imported by name; put {attribute} in a module file next to the script "
                          f"(e.g. {module}.py) and reference it as '{module}:{attribute}'{_objects_in_fit(kind)}")
    if any(not part or part.startswith("_") for part in module_name.split(".") + parts):
        raise ConfigError(f"{kind} reference '{reference}' names a private attribute; "
                          "reference a public class or function")
    policy = current_policy()
    trainlab_code = module_name.split(".")[0] == "trainlab"
    if not (policy.allow or trainlab_code or _is_users_code(module_name, policy)):
        top = module_name.split(".")[0]
        if policy.local and top not in sys.stdlib_module_names and _module_files(top) is None:
            raise ConfigError(_not_found(module_name, kind, reference, policy))
        if shadowed := _shadowed_by(top, policy):
            raise ConfigError(f"config references '{reference}', but module '{top}' is {shadowed}")
        misfit = _misfit(reference, kind, _loaded_target(module_name, parts))  # torch.nn:MSELoss for a loss
        raise misfit or _refuse_outside(reference, kind)
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
        raise _import_failure(exc, module_name, kind, reference, policy) from exc
    target: Any = module
    for part in parts:
        if not hasattr(target, part):
            raise _no_attribute(target, part, module_name, attribute, f"{kind} '{reference}'", policy)
        target = getattr(target, part)
        if inspect.ismodule(target):
            raise ConfigError(f"{kind} reference '{reference}' reaches the module '{target.__name__}' "
                              f"through '{module_name}'; reference a class or function defined in your module")
    if (misfit := _misfit(reference, kind, target)) is not None:  # before the opt-in's refusal: no opt-in helps
        raise misfit
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
