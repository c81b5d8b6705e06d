"""The tasks: one module (or package) per task, registered by name in ``lmrl.tasks.registry``.

``make_task("maze-fo")`` returns a fresh environment for one episode; ``task_names()`` lists them;
``resolve_task("path/to/my_task.py:MyTask")`` loads a task of the user's.
"""

# Importing the modules registers their tasks.
from lmrl.tasks import (  # noqa: E402,F401,I001
    car_dealer,
    chess,  # chess and endgames
    guess_my_city,
    maze,
    textnav,
    twenty_questions,
    wordle,
)
from lmrl.tasks.registry import (
    make_task,
    register_task,
    resolve_task,
    task_class,
    task_names,
    task_source,
)

__all__ = ["make_task", "register_task", "resolve_task", "task_class", "task_names", "task_source"]
