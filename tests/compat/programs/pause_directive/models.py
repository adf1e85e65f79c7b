from pydantic import BaseModel


class DocumentState(BaseModel):
    title: str
    submitted: bool = False
    review_requested: bool = False
    review_status: str = "none"
    verdict: str | None = None
    input_seen: list[str] = []
    published: bool = False
    trail: list[str] = []
