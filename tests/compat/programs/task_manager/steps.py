from models import BoardState, Task
from ruvon.models import StepContext

TEAM = ["ana", "ben"]


def create_tasks(state: BoardState, context: StepContext) -> dict:
    """Create: one task per title, edited in place."""
    state.trail.append("Create_Tasks")
    for number, title in enumerate(state.titles, start=1):
        state.tasks.append(Task(id=number, title=title))
    return {}


def assign_tasks(state: BoardState, context: StepContext) -> dict:
    """Update: round-robin assignment, returned as a new list of dicts."""
    state.trail.append("Assign_Tasks")
    tasks = [
        {**task.model_dump(), "assignee": TEAM[index % len(TEAM)]}
        for index, task in enumerate(state.tasks)
    ]
    return {"tasks": tasks}


def complete_task(state: BoardState, context: StepContext) -> dict:
    """Update in place: the second task is done."""
    state.trail.append("Complete_Task")
    state.tasks[1].done = True
    return {"last_action": "completed task 2"}


def rename_task(state: BoardState, context: StepContext) -> dict:
    """Update: rename the first task, returning model instances."""
    state.trail.append("Rename_Task")
    tasks = list(state.tasks)
    tasks[0] = tasks[0].model_copy(update={"title": tasks[0].title.upper()})
    return {"tasks": tasks}


def delete_completed(state: BoardState, context: StepContext) -> dict:
    """Delete: drop the finished tasks."""
    state.trail.append("Delete_Completed")
    kept = [task for task in state.tasks if not task.done]
    gone = [task.id for task in state.tasks if task.done]
    return {"tasks": kept, "deleted": state.deleted + gone}


def summarize(state: BoardState, context: StepContext) -> dict:
    """Read: counts per assignee."""
    state.trail.append("Summarize")
    summary: dict[str, int] = {}
    for task in state.tasks:
        summary[task.assignee or "nobody"] = summary.get(task.assignee or "nobody", 0) + 1
    return {"summary": summary}
