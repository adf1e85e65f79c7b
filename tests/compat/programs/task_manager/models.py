from pydantic import BaseModel


class Task(BaseModel):
    id: int
    title: str
    assignee: str | None = None
    done: bool = False


class BoardState(BaseModel):
    board: str
    titles: list[str] = []
    tasks: list[Task] = []
    deleted: list[int] = []
    summary: dict[str, int] = {}
    trail: list[str] = []
