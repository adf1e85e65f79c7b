from pydantic import BaseModel


class SetupState(BaseModel):
    customer: str
    configured: bool = False
    schedule_name: str | None = None
    finished: bool = False
    trail: list[str] = []


class ReportState(BaseModel):
    customer: str = ""
    format: str = "pdf"
    built: bool = False
    trail: list[str] = []
