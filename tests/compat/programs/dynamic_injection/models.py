from pydantic import BaseModel


class Profile(BaseModel):
    region: str = ""
    segment: str = ""
    age: int = 0


class AccountState(BaseModel):
    applicant: str
    country: str
    kind: str
    age: int
    profile: Profile = Profile()
    consents: list[str] = []
    verified_business: bool = False
    account_number: str | None = None
    trail: list[str] = []
