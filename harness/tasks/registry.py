"""The task registry: every task class registers under its ``name``; users add their own.

Three sources: the built-in task modules (registered when ``lmrl.tasks`` is imported), a file given
as ``path/to/my_task.py:MyTask`` (or ``path/to/my_task.py`` when it defines one task), and installed
plugins that declare an entry point in the ``lmrl.tasks`` group (``my_pkg.tasks:MyTask``), loaded on
the first lookup that misses. ``resolve_task(spec)`` turns any of these into a registered name.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

from lmrl.task import InvalidTaskOption, Task

ENTRY_POINT_GROUP = "lmrl.tasks"
_REGISTRY: dict[str, type[Task]] = {}
_SOURCES: dict[str, str] = {}  # task name -> where it came from (file path, entry point)
_entry_points_loaded = False

# What a task class must define (beyond the abstract methods), with what each one is for.
REQUIRED_ATTRIBUTES: dict[str, str] = {
    "name": "the name it registers under",
    "version": "the version of its rules, bumped when rewards or texts change",
    "description": "one line for `lmrl tasks`",
    "anchors": "normalization anchors, Anchors(min, avg, max, source)",
    "reward_range": "(lowest, highest) reward of one step",
    "max_steps": "the step cap: most agent actions in an episode",
}


# May be set per instance (from an option) instead of on the class.
_INSTANCE_ATTRIBUTES = ("max_steps",)


def missing_parts(cls: type) -> list[str]:
    """Required attributes and abstract methods ``cls`` lacks (empty when it is a complete task)."""
    missing = [n for n in REQUIRED_ATTRIBUTES if n not in _INSTANCE_ATTRIBUTES and not hasattr(cls, n)]
    missing += sorted(getattr(cls, "__abstractmethods__", ()))
    return missing


def check_instance(task: Task) -> Task:
    """What can only be checked on an instance: the step cap (a class attribute or set in __init__)."""
    steps = getattr(task, "max_steps", None)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        what = "lacks max_steps" if steps is None else f"has max_steps={steps!r}"
        raise InvalidTaskOption(
            f"task {task.name} {what}: set it to the step cap, an integer >= 1 (most agent actions)"
        )
    return task


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``cls.name`` (a one-line error if it is incomplete)."""
    missing = missing_parts(cls)
    if missing:
        first = missing[0]
        why = REQUIRED_ATTRIBUTES.get(first, "an abstract method of Task")
        raise InvalidTaskOption(f"task class {cls.__name__} lacks {', '.join(missing)} ({first}: {why})")
    known = _REGISTRY.get(cls.name)
    if known is not None and known is not cls:
        if (known.__module__, known.__qualname__) == (cls.__module__, cls.__qualname__):
            _REGISTRY[cls.name] = cls  # the same file loaded again (a second run in one process)
            return cls
        where = f"{known.__module__}, {cls.__module__}"
        raise InvalidTaskOption(f"task {cls.name!r} is registered twice ({where})")
    _REGISTRY[cls.name] = cls
    return cls


def task_names() -> list[str]:
    _load_entry_points()
    return sorted(_REGISTRY)


def task_class(name: str) -> type[Task]:
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InvalidTaskOption(
            f"unknown task {name!r}; known tasks: {', '.join(task_names())} "
            "(or a file: path/to/my_task.py:MyTask)"
        ) from None


def make_task(name: str, **options: Any) -> Task:
    return check_instance(task_class(name)(**options))


def task_source(name: str) -> str:
    """Where a task came from: ``lmrl`` for the built-ins, else its file or entry point."""
    return _SOURCES.get(name, "lmrl")


def is_file_spec(spec: str) -> bool:
    return spec.partition(":")[0].endswith(".py")


def resolve_task(spec: str) -> str:
    """A registered task name for ``spec``: a name, ``file.py:Class`` or ``file.py`` (loading the file
    and registering its task). Errors are one line (``InvalidTaskOption``)."""
    if not is_file_spec(spec):
        task_class(spec)
        return spec
    path_text, _, class_name = spec.partition(":")
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise InvalidTaskOption(f"task file {path_text} does not exist")
    module = _import_file(path)
    if class_name:
        cls = getattr(module, class_name, None)
        if not (inspect.isclass(cls) and issubclass(cls, Task)):
            raise InvalidTaskOption(f"{path_text} has no Task class {class_name!r}")
    else:
        defined = _task_classes(module, complete=False)
        found = [c for c in defined if not inspect.isabstract(c)] or defined  # one incomplete: say why
        if len(found) != 1:
            names = ", ".join(c.__name__ for c in found) or "none"
            raise InvalidTaskOption(
                f"{path_text} defines {len(found)} task classes ({names}); name one: {path_text}:Class"
            )
        cls = found[0]
    register_task(cls)
    _SOURCES[cls.name] = str(path.resolve())
    return cls.name


def _task_classes(module: Any, complete: bool = True) -> list[type[Task]]:
    """The task classes a module defines itself (not those it imports); only complete ones by default."""
    return [
        c
        for c in vars(module).values()
        if inspect.isclass(c)
        and issubclass(c, Task)
        and c.__module__ == module.__name__
        and not (complete and inspect.isabstract(c))
    ]


def _import_file(path: Path) -> Any:
    name = f"lmrl_user_task_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidTaskOption(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except InvalidTaskOption:
        raise
    except Exception as error:  # the user's file: say where and what, in one line
        del sys.modules[name]
        raise InvalidTaskOption(f"importing {path} failed: {type(error).__name__}: {error}") from None
    return module


def _load_entry_points() -> None:
    """Register the tasks of installed plugins (``[project.entry-points."lmrl.tasks"]``), once."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry.load()
        except Exception as error:  # one broken plugin must not take `lmrl tasks` down with it
            print(f"lmrl: warning: task plugin {entry.value} failed to load: {error}", file=sys.stderr)
            continue
        for cls in [loaded] if inspect.isclass(loaded) else _task_classes(loaded):
            if cls.name not in _REGISTRY:
                register_task(cls)
            _SOURCES.setdefault(cls.name, f"entry point {entry.name} = {entry.value}")
