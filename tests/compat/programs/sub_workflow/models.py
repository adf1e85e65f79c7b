from pydantic import BaseModel


class OnboardingState(BaseModel):
    customer: str
    document: str | None = None
    sub_workflow_results: dict = {}
    kyc_passed: bool | None = None
    active: bool = False
    trail: list[str] = []


class KycState(BaseModel):
    customer: str
    document: str
    identity_ok: bool = False
    sanctions_hit: bool = False
    trail: list[str] = []
